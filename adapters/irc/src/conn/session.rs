//! A registered connection's link to the daemon: its login, its contacts as nicks, the event
//! subscription (resumed after a broken stream) and the task that reports read marks.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sessiond_api::client::{Client, Login};
use sessiond_api::v1::{Event, MarkConversationReadRequest, SubscribeRequest};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::{Code, Status};
use tracing::debug;

use super::ReadMarks;
use crate::directory::Directory;

/// The fewest events buffered between the subscription task and the connection (the buffer is
/// the send queue's length if that is longer).
const MIN_EVENT_BUFFER: usize = 256;
/// Read marks are told to the daemon at most this often per connection.
const MARK_DELAY: Duration = Duration::from_millis(200);
/// The longest wait between two attempts to resubscribe.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What a registered connection holds.
#[derive(Debug)]
pub(crate) struct Session {
    /// Calls with the connection's own token.
    pub client: Client,
    /// The identity's local name.
    pub identity: String,
    /// The identity's Account ID.
    pub account_id: String,
    /// True if the login used the admin token.
    pub admin: bool,
    /// The identity's last seq at login: live events come after it, replay up to it.
    pub start_seq: u64,
    /// The contacts as nicks.
    pub dir: Directory,
    /// Seqs of OutgoingMessage events this connection queued (skipped when they come back).
    pub own_sent: HashSet<u64>,
    /// In `&session`.
    pub joined: bool,
    /// The AWAY message, if away.
    pub away: Option<String>,
    /// Groups (and later community rooms) as channels.
    pub channels: super::channels::Channels,
    events: mpsc::Receiver<Event>,
    /// Set when the connection fell too far behind its events (it is then dropped).
    overflowed: Arc<AtomicBool>,
    subscription: JoinHandle<()>,
    marker: JoinHandle<()>,
}

impl Session {
    /// Loads the contacts and starts the subscription (from the identity's last seq at login)
    /// and the read-mark task.
    pub async fn start(
        login: Login,
        marks: Arc<ReadMarks>,
        sendq_lines: usize,
    ) -> Result<Session, Status> {
        let Login {
            client,
            identity,
            admin,
        } = login;
        let contacts = client.all_contacts(&identity.name).await?;
        let mut dir = Directory::default();
        dir.load(contacts);
        let (tx, events) = mpsc::channel(sendq_lines.max(MIN_EVENT_BUFFER));
        let overflowed = Arc::new(AtomicBool::new(false));
        let subscription = tokio::spawn(subscribe_loop(
            client.clone(),
            identity.name.clone(),
            identity.last_seq,
            identity.log_epoch,
            tx,
            overflowed.clone(),
        ));
        let marker = tokio::spawn(mark_loop(client.clone(), identity.name.clone(), marks));
        Ok(Session {
            client,
            identity: identity.name,
            account_id: identity.account_id,
            admin,
            start_seq: identity.last_seq,
            dir,
            own_sent: HashSet::new(),
            joined: false,
            away: None,
            channels: Default::default(),
            events,
            overflowed,
            subscription,
            marker,
        })
    }

    /// True if the connection fell so far behind its events that the subscription gave up.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::SeqCst)
    }

    /// Refreshes the contacts from the daemon; returns the nick changes
    /// (Account ID, old, new).
    pub async fn refresh_contacts(&mut self) -> Result<Vec<(String, String, String)>, Status> {
        let contacts = self.client.all_contacts(&self.identity).await?;
        Ok(self.dir.load(contacts))
    }

    /// Stops the subscription and waits (briefly) for the last read marks to reach the daemon.
    /// Call after the writer has finished and [`ReadMarks::close`].
    pub async fn finish(self) {
        drop(self.events);
        self.subscription.abort();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.marker).await;
    }
}

/// The next event of a registered connection; never resolves before registration.
pub(crate) async fn next_event(session: &mut Option<Session>) -> Option<Event> {
    match session {
        Some(s) => s.events.recv().await,
        None => std::future::pending().await,
    }
}

/// An event that is already waiting, if any (never waits).
pub(crate) fn ready_event(session: &mut Option<Session>) -> Option<Event> {
    session.as_mut()?.events.try_recv().ok()
}

/// Streams the identity's events (with live typing) into `tx`, resubscribing from the last seq
/// seen when the stream breaks. Ends when the connection drops the receiver, or when the daemon
/// refuses the subscription for good (token revoked, identity removed), which closes `tx` and
/// so ends the connection.
///
/// It never waits for the connection: the gRPC channel is shared by every IRC connection, and a
/// stream left unread would hold the channel's flow-control window from all of them. A
/// connection whose buffer is full is not reading its socket; `overflowed` is set and the
/// connection ends (as for a full send queue).
async fn subscribe_loop(
    client: Client,
    identity: String,
    mut from_seq: u64,
    log_epoch: u64,
    tx: mpsc::Sender<Event>,
    overflowed: Arc<AtomicBool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let request = SubscribeRequest {
            identity: identity.clone(),
            from_seq,
            typing: true,
            log_epoch,
        };
        let mut messages = client.messages.clone();
        let subscribed = tokio::select! {
            _ = tx.closed() => return,
            r = messages.subscribe(request) => r,
        };
        match subscribed {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                loop {
                    let next = tokio::select! {
                        _ = tx.closed() => return,
                        next = stream.message() => next,
                    };
                    match next {
                        Ok(Some(resp)) => {
                            let Some(event) = resp.event else { continue };
                            backoff = Duration::from_millis(100);
                            if event.seq > 0 {
                                from_seq = event.seq;
                            }
                            if tx.try_send(event).is_err() {
                                if !tx.is_closed() {
                                    overflowed.store(true, Ordering::SeqCst);
                                }
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(status) if is_final(&status) => return,
                        Err(status) => {
                            debug!(code = ?status.code(), "event stream broke; resubscribing");
                            break;
                        }
                    }
                }
            }
            Err(status) if is_final(&status) => {
                debug!(code = ?status.code(), "subscription refused");
                return;
            }
            Err(status) => debug!(code = ?status.code(), "subscribe failed; retrying"),
        }
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A refusal that retrying cannot fix.
fn is_final(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unauthenticated
            | Code::PermissionDenied
            | Code::NotFound
            // The identity's log was replaced (deleted and created again): this cursor never
            // works again.
            | Code::FailedPrecondition
    )
}

/// Tells the daemon the newest seq written to the client per conversation, coalescing bursts.
async fn mark_loop(client: Client, identity: String, marks: Arc<ReadMarks>) {
    loop {
        marks.notify.notified().await;
        if !marks.is_closed() {
            // Gather a burst into one call per conversation.
            tokio::time::sleep(MARK_DELAY).await;
        }
        let closed = marks.is_closed();
        for (account_id, seq) in marks.take() {
            let request = MarkConversationReadRequest {
                identity: identity.clone(),
                account_id,
                seq,
            };
            if let Err(status) = client
                .conversations
                .clone()
                .mark_conversation_read(request)
                .await
            {
                debug!(code = ?status.code(), "MarkRead failed");
            }
        }
        if closed {
            return;
        }
    }
}
