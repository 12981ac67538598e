//! What the adapter keeps in memory: per identity, the live subscription that wakes long-polling
//! `/sync`s and tracks typing, plus filters, account data and recent txnIds. Everything durable
//! (messages, conversations, read markers, tokens) lives in the daemon; this is lost on restart
//! and rebuilt as clients come back.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sessiond_api::client::{Client, Connector};
use sessiond_api::v1::{event, SubscribeRequest};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::config::MatrixConfig;

/// Filters kept per identity; the oldest go first. Clients make one or two per login.
const MAX_FILTERS: usize = 64;
/// Account data types kept per identity (each at most one request body, 1 MiB).
const MAX_ACCOUNT_DATA: usize = 64;
/// Recent (seq, device, txnId) of sends kept per identity, for `unsigned.transaction_id`.
const MAX_TXNS: usize = 256;

/// Resolves once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, before any caller awaits again.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// The daemon channel of one HTTP connection, in the extensions of each request it carries: the
/// calls of one connection share an HTTP/2 connection to the daemon that ends with it.
#[derive(Debug, Clone)]
pub(crate) struct ConnChannel(pub Channel);

/// The adapter's shared state; a cheap-clone handle is `Arc<Shared>`.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The `[matrix]` config.
    pub config: MatrixConfig,
    /// Channels to the daemon's gRPC API (one per HTTP connection, or one all share); every call
    /// carries the client's own token.
    pub api: Connector,
    /// Turns true when the server shuts down: long-polls answer, live subscriptions end.
    pub stop: watch::Receiver<bool>,
    /// Per identity, by local name. The std mutex is never held across an await.
    identities: Mutex<HashMap<String, Arc<IdentityState>>>,
}

impl Shared {
    pub fn new(config: MatrixConfig, api: Connector, stop: watch::Receiver<bool>) -> Shared {
        Shared {
            config,
            api,
            stop,
            identities: Mutex::new(HashMap::new()),
        }
    }

    /// The channel for a request: the one of the HTTP connection it came on (see [`ConnChannel`]),
    /// else a new one from the connector.
    pub fn channel(&self, conn: Option<&ConnChannel>) -> Channel {
        conn.map_or_else(|| self.api.channel(), |c| c.0.clone())
    }

    /// The state of identity `name`, made on first use.
    pub fn identity(&self, name: &str) -> Arc<IdentityState> {
        let mut map = self
            .identities
            .lock()
            .expect("identities lock is never poisoned");
        map.entry(name.to_owned())
            .or_insert_with(|| Arc::new(IdentityState::new()))
            .clone()
    }

    /// Stops every live subscription (at shutdown).
    pub fn stop_all(&self) {
        let map = self
            .identities
            .lock()
            .expect("identities lock is never poisoned");
        for state in map.values() {
            state.stop_live();
        }
    }
}

/// What one identity's clients share.
#[derive(Debug)]
pub(crate) struct IdentityState {
    /// Bumped (to the new mutation count) whenever the log grows or ephemeral state changes;
    /// long-polls wait on it.
    notify: watch::Sender<u64>,
    /// Ephemeral and in-memory state. Never held across an await.
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The highest seq the live subscription has seen.
    last_seq: u64,
    /// Counts ephemeral changes (typing, account data); items carry the count of their change.
    eph: u64,
    /// Peer → who is typing in the room with it, and the eph of the change.
    typing: HashMap<String, (Typers, u64)>,
    /// Counts the user's own typing notices, so that a timeout ends only the notice it was
    /// set for.
    own_typing_gen: u64,
    /// Type → (content, eph of the change).
    account_data: BTreeMap<String, (Value, u64)>,
    /// Community room address → eph of its join or leave through this adapter.
    rooms: HashMap<String, u64>,
    /// Filters by id; ids count up from 0.
    filters: VecDeque<(u64, Value)>,
    next_filter: u64,
    /// (seq, device id, txnId) of recent sends.
    txns: VecDeque<(u64, String, String)>,
    /// The live subscription task, if running.
    live: Option<JoinHandle<()>>,
    /// Bumped on every change, published through `notify`.
    version: u64,
}

/// Who is typing in one room: the other side, the user (one of its clients), or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Typers {
    /// The contact is typing.
    pub peer: bool,
    /// The user is typing (until its notice's timeout).
    pub me: bool,
}

impl Typers {
    fn any(self) -> bool {
        self.peer || self.me
    }
}

/// The changes a `/sync` reports since an ephemeral version.
#[derive(Debug, Default)]
pub(crate) struct EphemeralChanges {
    /// The current ephemeral version.
    pub eph: u64,
    /// Peers whose room's typing changed, with who is typing there now.
    pub typing: Vec<(String, Typers)>,
    /// Account data types that changed, with the content.
    pub account_data: Vec<(String, Value)>,
    /// Community rooms joined or left through this adapter.
    pub rooms: Vec<String>,
}

impl IdentityState {
    pub(crate) fn new() -> IdentityState {
        IdentityState {
            notify: watch::channel(0).0,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("identity state lock is never poisoned")
    }

    /// Wakes the long-polls (called with the lock held; a watch send never blocks).
    fn bump(&self, inner: &mut Inner) {
        inner.version += 1;
        self.notify.send_replace(inner.version);
    }

    /// A receiver that sees every change from now on.
    pub fn watch(&self) -> watch::Receiver<u64> {
        let mut rx = self.notify.subscribe();
        rx.borrow_and_update();
        rx
    }

    /// The highest seq the live subscription has seen.
    pub fn last_seq(&self) -> u64 {
        self.lock().last_seq
    }

    /// Starts the live subscription of `identity` with `token`'s client if it is not running,
    /// from `from_seq` (the log's end as the caller saw it). It ends when the stream does (the
    /// token revoked, the daemon gone) or at shutdown; the next `/sync` starts it again.
    pub fn ensure_live(
        self: &Arc<Self>,
        client: &Client,
        identity: &str,
        from_seq: u64,
        log_epoch: u64,
        stop: watch::Receiver<bool>,
    ) {
        let mut inner = self.lock();
        if inner.live.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        inner.last_seq = inner.last_seq.max(from_seq);
        let me = Arc::clone(self);
        let client = client.clone();
        let identity = identity.to_owned();
        inner.live = Some(tokio::spawn(async move {
            me.run_live(client, identity, from_seq, log_epoch, stop)
                .await;
        }));
    }

    fn stop_live(&self) {
        if let Some(h) = self.lock().live.take() {
            h.abort();
        }
    }

    async fn run_live(
        &self,
        mut client: Client,
        identity: String,
        from_seq: u64,
        log_epoch: u64,
        mut stop: watch::Receiver<bool>,
    ) {
        let span = tracing::debug_span!("matrix_live", identity = %identity);
        let _enter = span.enter();
        let stream = client
            .messages
            .subscribe(SubscribeRequest {
                identity: identity.clone(),
                from_seq,
                typing: true,
                log_epoch,
            })
            .await;
        let mut stream = match stream {
            Ok(s) => s.into_inner(),
            Err(status) => {
                tracing::debug!(code = ?status.code(), "live subscription refused");
                return;
            }
        };
        loop {
            let next = tokio::select! {
                next = stream.message() => next,
                () = stopped(&mut stop) => return,
            };
            match next {
                Ok(Some(resp)) => {
                    if let Some(ev) = resp.event {
                        self.on_event(ev);
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(code = ?status.code(), "live subscription ended");
                    break;
                }
            }
        }
        // Wake the long-polls so they start a new subscription with their own token.
        let mut inner = self.lock();
        inner.live = None;
        self.bump(&mut inner);
    }

    fn on_event(&self, ev: sessiond_api::v1::Event) {
        let mut inner = self.lock();
        match ev.kind {
            Some(event::Kind::Typing(t)) => {
                inner.eph += 1;
                let eph = inner.eph;
                let entry = inner.typing.entry(t.peer).or_default();
                *entry = (
                    Typers {
                        peer: t.typing,
                        ..entry.0
                    },
                    eph,
                );
            }
            _ => inner.last_seq = inner.last_seq.max(ev.seq),
        }
        self.bump(&mut inner);
    }

    /// What changed after ephemeral version `since` (everything, if `since` is from before a
    /// restart of the adapter, i.e. newer than the current version).
    pub fn ephemeral_since(&self, since: u64) -> EphemeralChanges {
        let inner = self.lock();
        let since = if since > inner.eph { 0 } else { since };
        EphemeralChanges {
            eph: inner.eph,
            typing: inner
                .typing
                .iter()
                .filter(|(_, (who, v))| *v > since && (since > 0 || who.any()))
                .map(|(peer, (who, _))| (peer.clone(), *who))
                .collect(),
            account_data: inner
                .account_data
                .iter()
                .filter(|(_, (_, v))| *v > since)
                .map(|(k, (c, _))| (k.clone(), c.clone()))
                .collect(),
            // An initial sync reads memberships from the daemon.
            rooms: inner
                .rooms
                .iter()
                .filter(|(_, v)| **v > since)
                .map(|(k, _)| k.clone())
                .collect(),
        }
    }

    /// Records that the user joined or left community room `address` here, so the next
    /// incremental `/sync` shows the change (the daemon's log has no event for it).
    pub fn room_changed(&self, address: &str) {
        let mut inner = self.lock();
        inner.eph += 1;
        let eph = inner.eph;
        if inner.rooms.len() >= MAX_FILTERS && !inner.rooms.contains_key(address) {
            // Keep the newest; an old change was synced long ago.
            if let Some(oldest) = inner
                .rooms
                .iter()
                .min_by_key(|(_, v)| **v)
                .map(|(k, _)| k.clone())
            {
                inner.rooms.remove(&oldest);
            }
        }
        inner.rooms.insert(address.to_owned(), eph);
        self.bump(&mut inner);
    }

    /// The user's own typing in the room with `peer` (the spec lists the user in its own
    /// `m.typing`): on until `timeout` passes or a notice turns it off.
    pub fn set_own_typing(self: &Arc<Self>, peer: &str, on: bool, timeout: Duration) {
        let generation = {
            let mut inner = self.lock();
            inner.own_typing_gen += 1;
            let generation = inner.own_typing_gen;
            inner.eph += 1;
            let eph = inner.eph;
            let entry = inner.typing.entry(peer.to_owned()).or_default();
            *entry = (Typers { me: on, ..entry.0 }, eph);
            self.bump(&mut inner);
            generation
        };
        if !on {
            return;
        }
        let me = Arc::clone(self);
        let peer = peer.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let mut inner = me.lock();
            let current = inner.typing.get(&peer).map(|(who, _)| *who);
            if inner.own_typing_gen != generation || !current.is_some_and(|w| w.me) {
                return;
            }
            inner.eph += 1;
            let eph = inner.eph;
            if let Some(entry) = inner.typing.get_mut(&peer) {
                *entry = (
                    Typers {
                        me: false,
                        ..entry.0
                    },
                    eph,
                );
            }
            me.bump(&mut inner);
        });
    }

    /// Stores account data of `kind`.
    pub fn set_account_data(&self, kind: &str, content: Value) -> Result<(), ()> {
        let mut inner = self.lock();
        if !inner.account_data.contains_key(kind) && inner.account_data.len() >= MAX_ACCOUNT_DATA {
            return Err(());
        }
        inner.eph += 1;
        let eph = inner.eph;
        inner.account_data.insert(kind.to_owned(), (content, eph));
        self.bump(&mut inner);
        Ok(())
    }

    /// Account data of `kind`, if stored.
    pub fn account_data(&self, kind: &str) -> Option<Value> {
        self.lock().account_data.get(kind).map(|(c, _)| c.clone())
    }

    /// Stores a filter; returns its id.
    pub fn add_filter(&self, filter: Value) -> u64 {
        let mut inner = self.lock();
        let id = inner.next_filter;
        inner.next_filter += 1;
        if inner.filters.len() >= MAX_FILTERS {
            inner.filters.pop_front();
        }
        inner.filters.push_back((id, filter));
        id
    }

    /// The filter with `id`.
    pub fn filter(&self, id: u64) -> Option<Value> {
        self.lock()
            .filters
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, f)| f.clone())
    }

    /// Remembers that `device` sent event-log entry `seq` with `txn`.
    pub fn record_txn(&self, seq: u64, device: &str, txn: &str) {
        let mut inner = self.lock();
        if inner.txns.iter().any(|(s, _, _)| *s == seq) {
            return;
        }
        if inner.txns.len() >= MAX_TXNS {
            inner.txns.pop_front();
        }
        inner
            .txns
            .push_back((seq, device.to_owned(), txn.to_owned()));
    }

    /// The txnId `device` sent `seq` with, if remembered.
    pub fn txn_of(&self, seq: u64, device: &str) -> Option<String> {
        self.lock()
            .txns
            .iter()
            .find(|(s, d, _)| *s == seq && d == device)
            .map(|(_, _, t)| t.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_changes_since_a_version() {
        let s = IdentityState::new();
        s.on_event(typing("p1", true));
        let v1 = s.ephemeral_since(0).eph;
        s.on_event(typing("p2", true));
        s.set_account_data("x.y", serde_json::json!({"a": 1}))
            .expect("room for it");
        let all = s.ephemeral_since(0);
        assert_eq!(all.typing.len(), 2);
        assert_eq!(all.account_data.len(), 1);
        let later = s.ephemeral_since(v1);
        assert_eq!(later.typing, vec![("p2".to_owned(), peer_typing())]);
        // A version from before a restart (newer than ours) gets everything.
        assert_eq!(s.ephemeral_since(1000).typing.len(), 2);
        // Initial syncs do not list peers that stopped typing.
        s.on_event(typing("p1", false));
        assert_eq!(
            s.ephemeral_since(0).typing,
            vec![("p2".to_owned(), peer_typing())]
        );
    }

    #[test]
    fn filters_are_bounded() {
        let s = IdentityState::new();
        let first = s.add_filter(serde_json::json!({}));
        for _ in 0..MAX_FILTERS {
            s.add_filter(serde_json::json!({"n": 1}));
        }
        assert!(s.filter(first).is_none());
        assert!(s.filter(first + 1).is_some());
    }

    fn peer_typing() -> Typers {
        Typers {
            peer: true,
            me: false,
        }
    }

    fn typing(peer: &str, on: bool) -> sessiond_api::v1::Event {
        sessiond_api::v1::Event {
            seq: 0,
            kind: Some(event::Kind::Typing(sessiond_api::v1::Typing {
                peer: peer.into(),
                typing: on,
            })),
            ..Default::default()
        }
    }
}
