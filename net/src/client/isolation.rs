//! Path isolation: a family of clients that share the transport, the settings and the saved
//! pool, each with its own paths, swarm cache and clock, and no two with a guard in common.
//!
//! [`NetClient::isolated`] hands out the member for an isolation key (the daemon uses one per
//! identity) when isolation is on ([`NetClient::set_isolation`]), else the client itself. A
//! member builds its paths like any client, except that the guards of every other member's
//! paths are excluded, and the path is committed under the family's lock after a last check,
//! so two members building at once cannot take the same guard.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::broadcast;

use super::{NetClient, Shared};
use crate::events::{NetStatus, EVENT_CAPACITY};
use crate::retry::RetryPolicy;
use crate::state::State;

/// What the clients of one family share.
#[derive(Default)]
pub(super) struct Family {
    /// Isolation on: [`NetClient::isolated`] hands out members.
    on: AtomicBool,
    /// Path ids, unique across the family.
    next_path_id: AtomicU64,
    /// The members by key (the root client is not listed). They live as long as the root: its
    /// drop empties this map (see `Drop for Shared`). std Mutex: short sections, never across
    /// an await.
    pub(super) members: Mutex<BTreeMap<u64, Arc<Shared>>>,
    /// The root client.
    root: Mutex<Weak<Shared>>,
    /// Held while a member checks the others' guards and adds a path (never across an await).
    pub(super) commit: Mutex<()>,
}

impl std::fmt::Debug for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family").finish_non_exhaustive()
    }
}

impl Family {
    /// Every live client of the family: the root first, then the members by key.
    fn all(&self) -> Vec<(Option<u64>, Arc<Shared>)> {
        let mut out = Vec::new();
        if let Some(root) = self.root.lock().expect("family lock").upgrade() {
            out.push((None, root));
        }
        for (key, shared) in self.members.lock().expect("family lock").iter() {
            out.push((Some(*key), Arc::clone(shared)));
        }
        out
    }
}

impl NetClient {
    /// Registers this client as its family's root (done once by [`NetClient::new`]).
    pub(super) fn adopt_as_root(&self) {
        *self.shared.family.root.lock().expect("family lock") = Arc::downgrade(&self.shared);
    }

    /// Turns path isolation on or off for the family. Off (the default): every key gets the
    /// root client. Turning it off does not drop members already handed out.
    pub fn set_isolation(&self, on: bool) {
        self.shared.family.on.store(on, Ordering::Relaxed);
    }

    /// Whether isolation is on.
    pub fn isolation(&self) -> bool {
        self.shared.family.on.load(Ordering::Relaxed)
    }

    /// The client that carries the requests of isolation key `key`: with isolation on, the
    /// family's member for it (made on first use: own paths, guards no other member uses);
    /// otherwise this client.
    pub fn isolated(&self, key: u64) -> NetClient {
        let family = &self.shared.family;
        if !family.on.load(Ordering::Relaxed) {
            return self.clone();
        }
        let mut members = family.members.lock().expect("family lock");
        if let Some(shared) = members.get(&key) {
            return NetClient {
                shared: Arc::clone(shared),
            };
        }
        let root = &self.shared;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let client = NetClient {
            shared: Arc::new(Shared {
                retry: RetryPolicy::from_config(&root.config),
                config: root.config.clone(),
                transport: Arc::clone(&root.transport),
                store: Arc::clone(&root.store),
                state: Mutex::new(State::default()),
                build: tokio::sync::Mutex::new(()),
                events,
                // Members stop with the root.
                shutdown: root.shutdown.clone(),
                maintenance: Mutex::new(None),
                family: Arc::clone(family),
                key: Some(key),
            }),
        };
        members.insert(key, Arc::clone(&client.shared));
        drop(members);
        client.load_pool();
        client
    }

    /// This client's isolation key (`None` for the root).
    pub fn isolation_key(&self) -> Option<u64> {
        self.shared.key
    }

    /// The status of every client of the family: the root (key `None`) first, then each
    /// member by key.
    pub fn family_status(&self) -> Vec<(Option<u64>, NetStatus)> {
        self.shared
            .family
            .all()
            .into_iter()
            .map(|(key, shared)| (key, NetClient { shared }.status()))
            .collect()
    }

    /// The guards of the other clients' paths in the family.
    pub(super) fn family_guards(&self) -> HashSet<[u8; 32]> {
        let mut out = HashSet::new();
        for (_, shared) in self.shared.family.all() {
            if Arc::ptr_eq(&shared, &self.shared) {
                continue;
            }
            let st = shared.state.lock().expect("network state lock poisoned");
            out.extend(st.paths.iter().map(|p| p.guard().ed25519));
        }
        out
    }

    /// A path id unique in the family.
    pub(super) fn next_path_id(&self) -> u64 {
        self.shared
            .family
            .next_path_id
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1)
    }
}
