//! Unit tests of the store: round trips, atomic operations, reopening, refusal of bad files.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "sessiond-store-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        TempDir(path)
    }
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const ALICE_ID: &str = "05aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const BOB_ID: &str = "05bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const CAROL_ID: &str = "05cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

fn outgoing(n: u8, to: &str) -> NewOutgoing {
    NewOutgoing {
        message_id: format!("{n:032x}"),
        recipient: to.to_owned(),
        text: format!("hello {n}"),
        sent_at_ms: 1_000 + u64::from(n),
        payload: vec![n; 10],
        namespace: 0,
        ttl_ms: 14 * 24 * 3600 * 1000,
    }
}

fn received(hash: &str, from: &str, at: u64) -> Received {
    Received {
        sender: from.to_owned(),
        text: format!("text {hash}"),
        sent_at_ms: at,
        received_at_ms: at + 5,
        hash: hash.to_owned(),
        sender_profile_name: None,
    }
}

#[test]
fn fresh_store_has_private_permissions_and_schema() {
    let dir = TempDir::new("perms");
    let data = dir.path().join("nested/data");
    let store = Store::open(&data).expect("open");
    let dir_mode = fs::metadata(&data).expect("dir").permissions().mode() & 0o777;
    let file_mode = fs::metadata(store.file())
        .expect("file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    assert_eq!(file_mode, 0o600);
    assert!(store.identities().expect("list").is_empty());
}

#[test]
fn identities_round_trip_and_survive_reopen() {
    let dir = TempDir::new("ids");
    {
        let store = Store::open(dir.path()).expect("open");
        let a = store
            .add_identity("alice", ALICE_ID, &[1; 32], 10)
            .expect("add alice");
        let b = store
            .add_identity("bob", BOB_ID, &[2; 32], 11)
            .expect("add bob");
        assert_ne!(a.id, b.id);
        assert!(matches!(
            store.add_identity("alice", CAROL_ID, &[3; 32], 12),
            Err(StoreError::NameTaken { .. })
        ));
        assert!(matches!(
            store.add_identity("carol", ALICE_ID, &[1; 32], 12),
            Err(StoreError::AccountTaken { existing }) if existing == "alice"
        ));
    }
    let store = Store::open(dir.path()).expect("reopen");
    let names: Vec<_> = store
        .identities()
        .expect("list")
        .into_iter()
        .map(|r| (r.name, r.account_id))
        .collect();
    assert_eq!(
        names,
        vec![
            ("alice".to_owned(), ALICE_ID.to_owned()),
            ("bob".to_owned(), BOB_ID.to_owned())
        ]
    );
    assert_eq!(*store.identity_seed("bob").expect("seed"), [2; 32]);
    assert!(matches!(
        store.identity("nobody"),
        Err(StoreError::UnknownIdentity { .. })
    ));
}

#[test]
fn removing_an_identity_removes_its_data_and_ids_are_not_reused() {
    let dir = TempDir::new("remove");
    let store = Store::open(dir.path()).expect("open");
    let a = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add");
    let b = store.add_identity("bob", BOB_ID, &[2; 32], 1).expect("add");
    store
        .queue_outgoing(a.id, outgoing(1, BOB_ID), 5)
        .expect("queue");
    store
        .record_received(a.id, 0, &[received("h1", BOB_ID, 3)], Some("h1"), 6)
        .expect("recv");
    store
        .queue_outgoing(b.id, outgoing(2, ALICE_ID), 5)
        .expect("queue");
    store
        .add_token(
            &[9; 32],
            &TokenRecord {
                identity: a.id,
                label: "t".into(),
                created_at_ms: 1,
            },
        )
        .expect("token");
    let rx = store.watch(a.id);

    store.remove_identity("alice").expect("remove");
    assert!(
        rx.has_changed().is_err(),
        "watchers of a removed identity close"
    );
    assert!(store.token(&[9; 32]).expect("token").is_none());
    assert_eq!(
        store.outbox().expect("outbox").len(),
        1,
        "bob's entry stays"
    );
    assert_eq!(store.last_hash(a.id, 0).expect("cursor"), None);

    let again = store
        .add_identity("alice", ALICE_ID, &[1; 32], 7)
        .expect("re-add");
    assert_ne!(again.id, a.id);
    assert_eq!(store.last_seq(again.id).expect("seq"), 0);
    assert!(store.conversations(again.id).expect("convs").is_empty());
    assert_eq!(store.last_seq(b.id).expect("seq"), 1);
}

#[test]
fn queue_writes_outbox_event_and_conversation_together_and_survives_reopen() {
    let dir = TempDir::new("queue");
    let (id, entry_id);
    {
        let store = Store::open(dir.path()).expect("open");
        id = store
            .add_identity("alice", ALICE_ID, &[1; 32], 1)
            .expect("add")
            .id;
        let (event, entry) = store
            .queue_outgoing(id, outgoing(1, BOB_ID), 100)
            .expect("queue");
        assert_eq!(event.seq, 1);
        assert_eq!(entry.event_seq, 1);
        assert_eq!(entry.next_try_ms, 100);
        entry_id = entry.id;
        let (event2, _) = store
            .queue_outgoing(id, outgoing(2, BOB_ID), 101)
            .expect("queue");
        assert_eq!(event2.seq, 2);
    }
    // "Crash": drop the handle, open the file again and find everything.
    let store = Store::open(dir.path()).expect("reopen");
    let outbox = store.outbox().expect("outbox");
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[0].id, entry_id);
    assert_eq!(outbox[0].payload, vec![1; 10]);
    let (events, more) = store.events(id, 0, 0, 10, false).expect("events");
    assert!(!more);
    assert_eq!(events.len(), 2);
    assert!(matches!(&events[0].kind, EventKind::Outgoing { text, .. } if text == "hello 1"));
    let convs = store.conversations(id).expect("convs");
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0].outgoing_count, 2);
    assert_eq!(convs[0].last_seq, 2);
}

#[test]
fn queue_for_an_unknown_identity_writes_nothing() {
    let dir = TempDir::new("queue-unknown");
    let store = Store::open(dir.path()).expect("open");
    assert!(matches!(
        store.queue_outgoing(42, outgoing(1, BOB_ID), 1),
        Err(StoreError::UnknownIdentity { .. })
    ));
    assert!(store.outbox().expect("outbox").is_empty());
}

#[test]
fn outbox_retry_sent_and_failed() {
    let dir = TempDir::new("outbox");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    let (_, e1) = store
        .queue_outgoing(id, outgoing(1, BOB_ID), 100)
        .expect("q");
    let (_, e2) = store
        .queue_outgoing(id, outgoing(2, CAROL_ID), 100)
        .expect("q");
    assert_eq!(store.outbox_due(100).expect("due").len(), 2);

    let r = store.outbox_retry(e1.id, 500, "timeout").expect("retry");
    assert_eq!(r.attempts, 1);
    assert_eq!(r.last_error.as_deref(), Some("timeout"));
    let due: Vec<_> = store
        .outbox_due(200)
        .expect("due")
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(due, vec![e2.id]);

    let sent = store.outbox_sent(e1.id, "HASH1", 600).expect("sent");
    assert_eq!(sent.seq, 3);
    assert!(matches!(
        &sent.kind,
        EventKind::Delivery { state: DeliveryState::Sent, hash: Some(h), attempts: 2, .. } if h == "HASH1"
    ));
    let failed = store.outbox_failed(e2.id, "no path", 700).expect("failed");
    assert!(matches!(
        &failed.kind,
        EventKind::Delivery { state: DeliveryState::Failed, reason: Some(r), .. } if r == "no path"
    ));
    assert!(store.outbox().expect("outbox").is_empty());
    assert!(matches!(
        store.outbox_sent(e1.id, "again", 800),
        Err(StoreError::UnknownOutboxEntry { .. })
    ));
    assert_eq!(
        store.last_seq(id).expect("seq"),
        4,
        "no event for the refused finish"
    );
}

#[test]
fn received_messages_are_deduplicated_and_advance_the_cursor_atomically() {
    let dir = TempDir::new("recv");
    let id;
    {
        let store = Store::open(dir.path()).expect("open");
        id = store
            .add_identity("alice", ALICE_ID, &[1; 32], 1)
            .expect("add")
            .id;
        let mut m2 = received("h2", CAROL_ID, 20);
        m2.sender_profile_name = Some("Carol".into());
        let added = store
            .record_received(
                id,
                0,
                &[received("h1", BOB_ID, 10), m2, received("h1", BOB_ID, 10)],
                Some("h2"),
                30,
            )
            .expect("recv");
        assert_eq!(added.len(), 2, "the duplicate inside the batch is dropped");
        assert_eq!(
            store.last_hash(id, 0).expect("cursor").as_deref(),
            Some("h2")
        );
        // The next poll returns an overlap: only the new one is added.
        let added = store
            .record_received(
                id,
                0,
                &[received("h2", CAROL_ID, 20), received("h3", BOB_ID, 40)],
                Some("h3"),
                50,
            )
            .expect("recv");
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].seq, 3);
    }
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(
        store.last_hash(id, 0).expect("cursor").as_deref(),
        Some("h3")
    );
    assert_eq!(store.last_hash(id, 5).expect("cursor"), None);
    let added = store
        .record_received(id, 0, &[received("h3", BOB_ID, 40)], Some("h3"), 60)
        .expect("recv");
    assert!(added.is_empty(), "dedupe survives reopening");
    let contacts = store.contacts(id).expect("contacts");
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].profile_name.as_deref(), Some("Carol"));
    let convs = store.conversations(id).expect("convs");
    assert_eq!(convs[0].peer, BOB_ID, "most recent first");
    assert_eq!(convs[0].incoming_count, 2);
}

#[test]
fn history_pages_both_ways() {
    let dir = TempDir::new("history");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    let other = store
        .add_identity("bob", BOB_ID, &[2; 32], 1)
        .expect("add")
        .id;
    for n in 1..=7 {
        store
            .queue_outgoing(id, outgoing(n, BOB_ID), u64::from(n))
            .expect("q");
    }
    store
        .queue_outgoing(other, outgoing(9, ALICE_ID), 1)
        .expect("q");
    let seqs = |v: &[StoredEvent]| v.iter().map(|e| e.seq).collect::<Vec<_>>();
    let (page, more) = store.events(id, 0, 0, 3, false).expect("page");
    assert_eq!((seqs(&page), more), (vec![1, 2, 3], true));
    let (page, more) = store.events(id, 3, 0, 3, false).expect("page");
    assert_eq!((seqs(&page), more), (vec![4, 5, 6], true));
    let (page, more) = store.events(id, 6, 0, 3, false).expect("page");
    assert_eq!((seqs(&page), more), (vec![7], false));
    let (page, more) = store.events(id, 0, 0, 3, true).expect("page");
    assert_eq!((seqs(&page), more), (vec![7, 6, 5], true));
    let (page, more) = store.events(id, 0, 5, 10, true).expect("page");
    assert_eq!((seqs(&page), more), (vec![4, 3, 2, 1], false));
    let (page, _) = store.events(id, 4, 5, 10, false).expect("page");
    assert!(page.is_empty());
    assert_eq!(
        store.last_seq(other).expect("seq"),
        1,
        "logs are per identity"
    );
}

#[test]
fn watch_wakes_on_append() {
    let dir = TempDir::new("watch");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    let mut rx = store.watch(id);
    assert!(!rx.has_changed().expect("open"));
    store
        .record_received(id, 0, &[received("h1", BOB_ID, 1)], None, 2)
        .expect("recv");
    assert!(rx.has_changed().expect("open"));
    assert_eq!(*rx.borrow_and_update(), 1);
    // A poll with nothing new wakes nobody.
    store
        .record_received(id, 0, &[received("h1", BOB_ID, 1)], Some("h1"), 3)
        .expect("recv");
    assert!(!rx.has_changed().expect("open"));
}

#[test]
fn contacts_can_be_named_and_unnamed() {
    let dir = TempDir::new("contacts");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    let c = store
        .set_contact_name(id, BOB_ID, Some("Bobby"))
        .expect("name");
    assert_eq!(c.name.as_deref(), Some("Bobby"));
    assert_eq!(
        store.contact(id, BOB_ID).expect("get").name.as_deref(),
        Some("Bobby")
    );
    store.set_contact_name(id, BOB_ID, None).expect("unname");
    assert_eq!(store.contacts(id).expect("list")[0].name, None);
}

#[test]
fn snode_pool_blob_round_trips() {
    let dir = TempDir::new("pool");
    {
        let store = Store::open(dir.path()).expect("open");
        assert_eq!(store.snode_pool().expect("pool"), None);
        store.set_snode_pool(b"pool-bytes").expect("save");
    }
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(
        store.snode_pool().expect("pool").as_deref(),
        Some(&b"pool-bytes"[..])
    );
}

#[test]
fn a_second_open_of_the_same_dir_is_refused() {
    let dir = TempDir::new("lock");
    let _first = Store::open(dir.path()).expect("open");
    let err = Store::open(dir.path()).expect_err("second open must fail");
    assert!(matches!(err, StoreError::InUse { .. }), "{err}");
    assert!(err.to_string().contains("in use by another sessiond"));
}

#[test]
fn garbage_file_is_refused_as_corrupt() {
    let dir = TempDir::new("garbage");
    prepare_dir(dir.path()).expect("dir");
    fs::write(dir.path().join(DB_FILE), vec![0x5a; 8192]).expect("write");
    let err = Store::open(dir.path()).expect_err("garbage must be refused");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

#[test]
fn foreign_redb_file_is_refused() {
    let dir = TempDir::new("foreign");
    prepare_dir(dir.path()).expect("dir");
    {
        let db = Database::create(dir.path().join(DB_FILE)).expect("create");
        let tx = db.begin_write().expect("tx");
        let t: TableDefinition<'_, &str, &str> = TableDefinition::new("other_app");
        tx.open_table(t)
            .expect("table")
            .insert("k", "v")
            .expect("insert");
        tx.commit().expect("commit");
    }
    let err = Store::open(dir.path()).expect_err("foreign file must be refused");
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
}

#[test]
fn newer_schema_is_refused() {
    let dir = TempDir::new("newer");
    {
        let store = Store::open(dir.path()).expect("open");
        let tx = store.shared.db.begin_write().expect("tx");
        tx.open_table(META)
            .expect("meta")
            .insert(SCHEMA_KEY, SCHEMA_VERSION + 1)
            .expect("insert");
        tx.commit().expect("commit");
    }
    let err = Store::open(dir.path()).expect_err("newer schema must be refused");
    assert!(
        matches!(err, StoreError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1),
        "{err}"
    );
}
