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
        idempotency_key: None,
        sync_copy: None,
        extras: MessageExtras::default(),
        attachments: Vec::new(),
    }
}

/// Queues a message that must be new.
fn queue(store: &Store, id: IdentityId, msg: NewOutgoing, now: u64) -> (StoredEvent, OutboxEntry) {
    match store.queue_outgoing(id, msg, now).expect("queue") {
        Queued::New { event, entry } => (event, entry),
        Queued::Duplicate(k) => panic!("unexpected duplicate {k:?}"),
    }
}

fn received(hash: &str, from: &str, at: u64) -> Received {
    Received {
        sender: from.to_owned(),
        conversation: None,
        text: format!("text {hash}"),
        sent_at_ms: at,
        received_at_ms: at + 5,
        hash: hash.to_owned(),
        sender_profile_name: None,
        sync_target: None,
        extras: MessageExtras::default(),
        attachments: Vec::new(),
        pointers: Vec::new(),
        server_id: None,
        edited_at_ms: None,
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
        let (event, entry) = queue(&store, id, outgoing(1, BOB_ID), 100);
        assert_eq!(event.seq, 1);
        assert_eq!(entry.event_seq, 1);
        assert_eq!(entry.next_try_ms, 100);
        entry_id = entry.id;
        let (event2, _) = queue(&store, id, outgoing(2, BOB_ID), 101);
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
    assert_eq!(convs[0].conversation.outgoing_count, 2);
    assert_eq!(convs[0].conversation.last_seq, 2);
    assert!(
        convs[0].conversation.accepted,
        "a conversation we started is accepted"
    );
}

#[test]
fn a_sync_copy_is_queued_with_its_message_held_until_it_is_sent_and_never_read_back() {
    let dir = TempDir::new("sync-copy");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    let with_copy = |n: u8, to: &str| NewOutgoing {
        sync_copy: Some(SyncCopy {
            account: ALICE_ID.to_owned(),
            payload: vec![n + 100; 12],
            hash: format!("COPY{n}"),
        }),
        ..outgoing(n, to)
    };
    let (event, entry) = queue(&store, id, with_copy(1, BOB_ID), 100);
    // Both entries were written in the message's transaction; the copy waits for the message.
    let outbox = store.outbox().expect("outbox");
    assert_eq!(outbox.len(), 2);
    let copy = outbox
        .iter()
        .find(|e| e.sync_copy)
        .expect("the copy's entry");
    assert_eq!(entry.held_copy, Some(copy.id));
    assert_eq!(copy.recipient, ALICE_ID);
    assert_eq!(copy.payload, vec![101; 12]);
    assert_eq!(copy.next_try_ms, HELD);
    assert_eq!(
        (&copy.message_id, copy.event_seq, copy.sent_at_ms),
        (&entry.message_id, event.seq, entry.sent_at_ms)
    );
    let due: Vec<u64> = store
        .outbox_due(u64::MAX - 1)
        .expect("due")
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(due, vec![entry.id], "only the message is due");

    // Our own poller reads the copy back (even before it is recorded sent): known by its hash.
    let back = Received {
        sync_target: Some(BOB_ID.to_owned()),
        server_id: None,
        edited_at_ms: None,
        ..received("COPY1", ALICE_ID, 1_001)
    };
    assert!(store
        .record_received(id, 0, &[back], Some("COPY1"), 150)
        .expect("record")
        .is_empty());

    // The message is sent: its copy is due now, in the same transaction.
    let sent = store.outbox_sent(entry.id, "MAINHASH", 200).expect("sent");
    assert!(sent.is_some());
    let outbox = store.outbox().expect("outbox");
    assert_eq!(outbox.len(), 1);
    assert_eq!((outbox[0].id, outbox[0].next_try_ms), (copy.id, 200));
    // The copy's outcome records nothing a client sees.
    let last = store.last_seq(id).expect("seq");
    assert_eq!(
        store.outbox_sent(copy.id, "COPY1", 300).expect("sent"),
        None
    );
    assert_eq!(store.last_seq(id).expect("seq"), last);
    assert!(store.outbox().expect("outbox").is_empty());

    // A message that fails takes its copy with it: other devices must not show it as sent.
    let (_, failing) = queue(&store, id, with_copy(2, CAROL_ID), 400);
    assert_eq!(store.outbox().expect("outbox").len(), 2);
    assert!(store
        .outbox_failed(failing.id, "no path", 500)
        .expect("failed")
        .is_some());
    assert!(store.outbox().expect("outbox").is_empty());

    // Survives a reopen (the held copy is plain data in the outbox).
    let (_, kept) = queue(&store, id, with_copy(3, BOB_ID), 600);
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    let outbox = store.outbox().expect("outbox");
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[0].held_copy, kept.held_copy);
    assert!(outbox[1].sync_copy && outbox[1].next_try_ms == HELD);
}

#[test]
fn another_devices_sync_copy_is_an_outgoing_message_of_its_conversation_once() {
    let dir = TempDir::new("sync-other");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    let copy = Received {
        sync_target: Some(BOB_ID.to_owned()),
        server_id: None,
        edited_at_ms: None,
        text: "sent from the phone".to_owned(),
        ..received("PHONE1", ALICE_ID, 1_000)
    };
    let added = store
        .record_received(id, 0, &[copy.clone(), copy.clone()], Some("PHONE1"), 50)
        .expect("record");
    assert_eq!(added.len(), 1, "{added:?}");
    match &added[0].kind {
        EventKind::Outgoing {
            message_id,
            recipient,
            text,
            sent_at_ms,
            from_other_device,
            ..
        } => {
            assert_eq!(recipient, BOB_ID);
            assert_eq!(text, "sent from the phone");
            assert_eq!(*sent_at_ms, 1_000);
            assert!(*from_other_device);
            assert_eq!(message_id.len(), 32);
        }
        other => panic!("not an outgoing message: {other:?}"),
    }
    // Read again (a restart's full read): nothing new.
    assert!(store
        .record_received(id, 0, &[copy], Some("PHONE1"), 60)
        .expect("record")
        .is_empty());
    // It is Bob's conversation, written by us: accepted, one outgoing, nothing incoming; no
    // conversation with ourselves.
    let convs = store.conversations(id).expect("convs");
    assert_eq!(convs.len(), 1, "{convs:?}");
    let c = &convs[0].conversation;
    assert_eq!(c.address, BOB_ID);
    assert_eq!((c.outgoing_count, c.incoming_count), (1, 0));
    assert!(c.accepted);
    let (events, _) = store.events(id, 0, 0, 10, false).expect("events");
    assert_eq!(events.len(), 1);
    // The flag survives the JSON round trip; older records read as not from another device.
    let old: EventKind = serde_json::from_str(&format!(
        r#"{{"type":"outgoing","message_id":"m","recipient":"{BOB_ID}","text":"t","sent_at_ms":1}}"#
    ))
    .expect("an old record");
    assert!(matches!(
        old,
        EventKind::Outgoing {
            from_other_device: false,
            server_id: None,
            ..
        }
    ));
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
    let (_, e1) = queue(&store, id, outgoing(1, BOB_ID), 100);
    let (_, e2) = queue(&store, id, outgoing(2, CAROL_ID), 100);
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

    let sent = store
        .outbox_sent(e1.id, "HASH1", 600)
        .expect("sent")
        .expect("a delivery event");
    assert_eq!(sent.seq, 3);
    assert!(matches!(
        &sent.kind,
        EventKind::Delivery { state: DeliveryState::Sent, hash: Some(h), attempts: 2, .. } if h == "HASH1"
    ));
    let failed = store
        .outbox_failed(e2.id, "no path", 700)
        .expect("failed")
        .expect("a delivery event");
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
    assert_eq!(contacts.len(), 2, "every sender is a contact");
    assert_eq!(contacts[0].account_id, BOB_ID);
    assert_eq!(contacts[0].handle.as_deref(), Some("sbbbbbbbb"));
    assert_eq!(contacts[1].profile_name.as_deref(), Some("Carol"));
    assert_eq!(contacts[1].handle.as_deref(), Some("Carol"));
    let convs = store.conversations(id).expect("convs");
    assert_eq!(convs[0].conversation.address, BOB_ID, "most recent first");
    assert_eq!(convs[0].conversation.incoming_count, 2);
    assert!(
        !convs[0].conversation.accepted,
        "only received: a message request"
    );
    assert_eq!(convs[1].display_name(), Some("Carol"));
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
        .set_contact_name(id, BOB_ID, Some("Bobby"), 2)
        .expect("name");
    assert_eq!(
        c.handle.as_deref(),
        Some("Bobby"),
        "a new contact's handle is its name"
    );
    assert_eq!(c.name.as_deref(), Some("Bobby"));
    assert_eq!(
        store.contact(id, BOB_ID).expect("get").name.as_deref(),
        Some("Bobby")
    );
    store.set_contact_name(id, BOB_ID, None, 3).expect("unname");
    let list = store.contacts(id).expect("list");
    assert_eq!(list[0].name, None);
    assert_eq!(
        list[0].handle.as_deref(),
        Some("Bobby"),
        "handles do not follow names"
    );
    assert_eq!(
        store.last_seq(id).expect("seq"),
        0,
        "no conversation: no event"
    );
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

fn conversation_events(store: &Store, id: IdentityId) -> Vec<(u64, ConversationView)> {
    let (events, _) = store.events(id, 0, 0, 1000, false).expect("events");
    events
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Conversation(v) => Some((e.seq, v)),
            _ => None,
        })
        .collect()
}

#[test]
fn handles_are_unique_case_insensitively_and_derived_on_first_sight() {
    let dir = TempDir::new("handles");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    let other = store
        .add_identity(
            "zed",
            "05dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
            &[4; 32],
            1,
        )
        .expect("add")
        .id;
    // First sight through a message with a profile name: the handle comes from it.
    let mut m = received("h1", BOB_ID, 10);
    m.sender_profile_name = Some("Bob Smith".into());
    store
        .record_received(id, 0, &[m], Some("h1"), 11)
        .expect("recv");
    assert_eq!(
        store.contact(id, BOB_ID).expect("bob").handle.as_deref(),
        Some("Bob_Smith")
    );
    // Same base for Carol (by name, another case): a number is appended.
    let carol = store
        .set_contact_name(id, CAROL_ID, Some("bob smith"), 12)
        .expect("name");
    assert_eq!(carol.handle.as_deref(), Some("bob_smith2"));
    // "root" is never given out.
    let dave = "05eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
    let d = store
        .set_contact_name(id, dave, Some("Root"), 13)
        .expect("name");
    assert_eq!(d.handle.as_deref(), Some("Root2"));
    // Another identity has its own handle space.
    let z = store
        .set_contact_name(other, CAROL_ID, Some("Bob Smith"), 13)
        .expect("name");
    assert_eq!(z.handle.as_deref(), Some("Bob_Smith"));

    // Set: a taken handle (any case) is refused; a free one moves the index entry.
    assert!(matches!(
        store.set_contact_handle(id, CAROL_ID, "BOB_SMITH", 14),
        Err(StoreError::HandleTaken { .. })
    ));
    assert!(matches!(
        store.set_contact_handle(id, CAROL_ID, "root", 14),
        Err(StoreError::BadHandle { .. })
    ));
    assert!(matches!(
        store.set_contact_handle(id, CAROL_ID, "9lives", 14),
        Err(StoreError::BadHandle { .. })
    ));
    let c = store
        .set_contact_handle(id, CAROL_ID, "carol", 15)
        .expect("set");
    assert_eq!(c.handle.as_deref(), Some("carol"));
    assert_eq!(
        store
            .contact_by_handle(id, "CAROL")
            .expect("lookup")
            .as_deref(),
        Some(CAROL_ID)
    );
    assert_eq!(
        store.contact_by_handle(id, "bob_smith2").expect("lookup"),
        None
    );
    // The freed handle can be taken by someone else; a contact may recase its own.
    store
        .set_contact_handle(id, dave, "bob_smith2", 16)
        .expect("take the freed one");
    store
        .set_contact_handle(id, CAROL_ID, "Carol", 17)
        .expect("recase");
    assert_eq!(
        store
            .contact_by_handle(id, "carol")
            .expect("lookup")
            .as_deref(),
        Some(CAROL_ID)
    );
    // Setting a handle creates the contact if needed, without deriving one first.
    let erin = "05ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    let e = store
        .set_contact_handle(id, erin, "erin", 18)
        .expect("new contact");
    assert_eq!(e.handle.as_deref(), Some("erin"));
    // Sending to an unknown recipient gives it an Account ID handle.
    let frank = "05a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    queue(&store, id, outgoing(1, frank), 19);
    assert_eq!(
        store.contact(id, frank).expect("frank").handle.as_deref(),
        Some("sa1b2c3d4")
    );
    // Handles leave with their identity.
    store.remove_identity("alice").expect("remove");
    let again = store
        .add_identity("alice", ALICE_ID, &[1; 32], 20)
        .expect("re-add")
        .id;
    assert_eq!(
        store.contact_by_handle(again, "carol").expect("lookup"),
        None
    );
    assert_eq!(store.contact_by_handle(id, "carol").expect("lookup"), None);
}

#[test]
fn conversations_go_from_request_to_accepted_to_left_and_back() {
    let dir = TempDir::new("conv-states");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    // Leave / MarkRead of an unknown conversation: NotFound, and nothing is created.
    assert!(matches!(
        store.leave_conversation(id, BOB_ID, 2),
        Err(StoreError::UnknownConversation { .. })
    ));
    assert!(matches!(
        store.mark_read(id, BOB_ID, 0, 2),
        Err(StoreError::UnknownConversation { .. })
    ));
    assert!(store.contacts(id).expect("contacts").is_empty());

    // An incoming message: a message request, no Conversation event (seq 1).
    store
        .record_received(id, 0, &[received("h1", BOB_ID, 10)], None, 11)
        .expect("recv");
    let v = store
        .conversation(id, BOB_ID)
        .expect("get")
        .expect("exists");
    assert!(!v.conversation.accepted && !v.conversation.left);
    assert!(conversation_events(&store, id).is_empty());

    // Open accepts it: event 2. Opening again changes nothing.
    let v = store.open_conversation(id, BOB_ID, 12).expect("open");
    assert!(v.conversation.accepted);
    let again = store.open_conversation(id, BOB_ID, 13).expect("open");
    assert_eq!(again, v);
    let evs = conversation_events(&store, id);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].0, 2);
    assert_eq!(evs[0].1, v);
    assert_eq!(
        v.conversation.last_seq, 1,
        "events about it do not move last_seq"
    );

    // MarkRead: forward only; past the end refused.
    let v = store.mark_read(id, BOB_ID, 1, 14).expect("read");
    assert_eq!(v.conversation.read_seq, 1);
    assert!(matches!(
        store.mark_read(id, BOB_ID, 99, 15),
        Err(StoreError::SeqPastEnd { seq: 99, last: 3 })
    ));
    let v = store.mark_read(id, BOB_ID, 0, 15).expect("older");
    assert_eq!(v.conversation.read_seq, 1);
    assert_eq!(
        store.last_seq(id).expect("seq"),
        3,
        "only the forward move recorded"
    );

    // Leave (event 4), leave again (nothing), then an incoming message: a request again
    // (Incoming 5, Conversation 6).
    let v = store.leave_conversation(id, BOB_ID, 16).expect("leave");
    assert!(v.conversation.left && v.conversation.accepted);
    store
        .leave_conversation(id, BOB_ID, 17)
        .expect("leave again");
    assert_eq!(store.last_seq(id).expect("seq"), 4);
    let added = store
        .record_received(id, 0, &[received("h2", BOB_ID, 20)], None, 21)
        .expect("recv");
    assert_eq!(added.len(), 2);
    assert!(matches!(added[0].kind, EventKind::Incoming(_)));
    let EventKind::Conversation(v) = &added[1].kind else {
        panic!("expected a Conversation event, got {:?}", added[1].kind);
    };
    assert!(!v.conversation.left && !v.conversation.accepted);
    assert_eq!(v.conversation.last_seq, 5);

    // Writing accepts it again: Outgoing 7, Conversation 8; the next send records no change.
    let (event, _) = queue(&store, id, outgoing(1, BOB_ID), 30);
    assert_eq!(event.seq, 7);
    let evs = conversation_events(&store, id);
    let (seq, last) = evs.last().expect("some");
    assert_eq!(*seq, 8);
    assert!(last.conversation.accepted && !last.conversation.left);
    assert_eq!(last.conversation.outgoing_count, 1);
    queue(&store, id, outgoing(2, BOB_ID), 31);
    assert_eq!(store.last_seq(id).expect("seq"), 9);

    // Naming the contact changes the display name: an event; the same name again: none.
    store
        .set_contact_name(id, BOB_ID, Some("Bobby"), 32)
        .expect("name");
    store
        .set_contact_name(id, BOB_ID, Some("Bobby"), 33)
        .expect("same name");
    let evs = conversation_events(&store, id);
    assert_eq!(evs.last().expect("some").0, 10);
    assert_eq!(evs.last().expect("some").1.display_name(), Some("Bobby"));
    assert_eq!(store.last_seq(id).expect("seq"), 10);

    // Open creates a conversation (with a contact and handle) and records it.
    let v = store.open_conversation(id, CAROL_ID, 34).expect("open new");
    assert!(v.conversation.accepted);
    assert_eq!(v.conversation.last_activity_ms, 0);
    assert_eq!(v.contact.handle.as_deref(), Some("scccccccc"));
    assert_eq!(store.last_seq(id).expect("seq"), 11);
}

#[test]
fn peer_history_pages_one_conversation() {
    let dir = TempDir::new("peer-history");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    queue(&store, id, outgoing(1, BOB_ID), 1); // 1
    let (_, carol_entry) = queue(&store, id, outgoing(2, CAROL_ID), 2); // 2
    store
        .record_received(id, 0, &[received("h1", BOB_ID, 3)], None, 3)
        .expect("recv"); // 3
    store.outbox_sent(carol_entry.id, "H", 4).expect("sent"); // 4
    store.mark_read(id, BOB_ID, 3, 5).expect("read"); // 5
    store
        .record_received(id, 0, &[received("h2", CAROL_ID, 6)], None, 6)
        .expect("recv"); // 6
    let seqs = |v: &[StoredEvent]| v.iter().map(|e| e.seq).collect::<Vec<_>>();
    let (page, more) = store.peer_events(id, BOB_ID, 0, 0, 10, false).expect("bob");
    assert_eq!((seqs(&page), more), (vec![1, 3, 5], false));
    let (page, more) = store
        .peer_events(id, CAROL_ID, 0, 0, 10, false)
        .expect("carol");
    assert_eq!((seqs(&page), more), (vec![2, 4, 6], false));
    let (page, more) = store
        .peer_events(id, BOB_ID, 0, 0, 2, true)
        .expect("bob back");
    assert_eq!((seqs(&page), more), (vec![5, 3], true));
    let (page, more) = store
        .peer_events(id, BOB_ID, 0, 3, 2, true)
        .expect("bob back");
    assert_eq!((seqs(&page), more), (vec![1], false));
    let (page, more) = store
        .peer_events(id, BOB_ID, 1, 5, 10, false)
        .expect("range");
    assert_eq!((seqs(&page), more), (vec![3], false));
    let (page, _) = store
        .peer_events(id, ALICE_ID, 0, 0, 10, false)
        .expect("nobody");
    assert!(page.is_empty());
}

#[test]
fn idempotency_keys_queue_once_per_identity() {
    let dir = TempDir::new("idempotency");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    let other = store
        .add_identity("bob", BOB_ID, &[2; 32], 1)
        .expect("add")
        .id;
    let keyed = |n: u8, to: &str, key: &str| NewOutgoing {
        idempotency_key: Some(key.to_owned()),
        ..outgoing(n, to)
    };
    let (event, entry) = queue(&store, id, keyed(1, BOB_ID, "txn1"), 10);
    let first = store.sent_key(id, "txn1").expect("read").expect("kept");
    assert_eq!(
        first,
        SentKey {
            message_id: entry.message_id.clone(),
            seq: event.seq,
            sent_at_ms: entry.sent_at_ms
        }
    );
    // The same key again (even to someone else): nothing written, the first one's facts.
    match store
        .queue_outgoing(id, keyed(2, CAROL_ID, "txn1"), 11)
        .expect("again")
    {
        Queued::Duplicate(k) => assert_eq!(k, first),
        Queued::New { .. } => panic!("a repeated key queued a message"),
    }
    assert_eq!(store.outbox().expect("outbox").len(), 1);
    assert_eq!(store.last_seq(id).expect("seq"), 1);
    assert!(store.conversation(id, CAROL_ID).expect("get").is_none());
    // Another key, or the same key for another identity: new messages.
    queue(&store, id, keyed(3, BOB_ID, "txn2"), 12);
    queue(&store, other, keyed(4, ALICE_ID, "txn1"), 12);
    assert_eq!(store.outbox().expect("outbox").len(), 3);
    // Keys leave with their identity.
    store.remove_identity("alice").expect("remove");
    assert_eq!(store.sent_key(id, "txn1").expect("read"), None);
    assert!(store.sent_key(other, "txn1").expect("read").is_some());
}

#[test]
fn identities_keep_a_display_name_and_typing_notices_reach_receivers() {
    let dir = TempDir::new("profile");
    let store = Store::open(dir.path()).expect("open");
    let a = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add");
    assert_eq!(a.display_name, None);
    let a = store
        .set_display_name("alice", Some("Alice A."))
        .expect("set");
    assert_eq!(a.display_name.as_deref(), Some("Alice A."));
    assert_eq!(
        store
            .identity("alice")
            .expect("get")
            .display_name
            .as_deref(),
        Some("Alice A.")
    );
    assert_eq!(
        store
            .set_display_name("alice", None)
            .expect("clear")
            .display_name,
        None
    );
    assert!(matches!(
        store.set_display_name("nobody", None),
        Err(StoreError::UnknownIdentity { .. })
    ));

    let mut rx = store.typing_notices();
    let notice = TypingNotice {
        identity: a.id,
        peer: BOB_ID.to_owned(),
        typing: true,
        at_ms: 5,
    };
    store.publish_typing(notice.clone());
    assert_eq!(rx.try_recv().expect("a notice"), notice);
    assert_eq!(store.last_seq(a.id).expect("seq"), 0, "never stored");
}

#[test]
fn tokens_are_revoked_within_their_scope() {
    let dir = TempDir::new("revoke");
    let store = Store::open(dir.path()).expect("open");
    let a = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add");
    let b = store.add_identity("bob", BOB_ID, &[2; 32], 1).expect("add");
    let token = |identity| TokenRecord {
        identity,
        label: "t".into(),
        created_at_ms: 1,
    };
    store.add_token(&[1; 32], &token(a.id)).expect("token");
    store.add_token(&[2; 32], &token(b.id)).expect("token");
    assert_eq!(
        store.revoke_token(&[2; 32], Some(a.id)).expect("revoke"),
        Revoked::OtherIdentity
    );
    assert!(store.token(&[2; 32]).expect("get").is_some());
    assert_eq!(
        store.revoke_token(&[1; 32], Some(a.id)).expect("revoke"),
        Revoked::Revoked(token(a.id))
    );
    assert_eq!(
        store.revoke_token(&[1; 32], Some(a.id)).expect("revoke"),
        Revoked::Unknown
    );
    assert_eq!(
        store.revoke_token(&[2; 32], None).expect("admin revokes"),
        Revoked::Revoked(token(b.id))
    );
    assert!(store.token(&[2; 32]).expect("get").is_none());
}

#[test]
fn records_written_before_the_new_fields_still_read() {
    let old_identity = r#"{"id":3,"name":"alice","account_id":"05aa","created_at_ms":9}"#;
    let rec: IdentityRecord = serde_json::from_str(old_identity).expect("identity");
    assert_eq!(rec.display_name, None);
    // Written back without the absent field, read again the same.
    let back: IdentityRecord = serde_json::from_slice(&encode(&rec)).expect("round trip");
    assert_eq!(back, rec);

    let wrote = r#"{"peer":"05bb","last_seq":4,"last_activity_ms":7,"incoming_count":1,"outgoing_count":2}"#;
    let c: ConversationRecord = serde_json::from_str(wrote).expect("conversation");
    assert!(c.accepted, "we wrote in it: accepted");
    assert!(!c.left);
    assert_eq!(c.read_seq, 0);
    let only_received = r#"{"peer":"05bb","last_seq":4,"last_activity_ms":7,"incoming_count":3,"outgoing_count":0}"#;
    let c: ConversationRecord = serde_json::from_str(only_received).expect("conversation");
    assert!(!c.accepted, "only received: a message request");
    let back: ConversationRecord = serde_json::from_slice(&encode(&c)).expect("round trip");
    assert_eq!(back, c);
    // A later `accepted: false` wins over the outgoing count.
    let explicit = r#"{"peer":"05bb","last_seq":4,"last_activity_ms":7,"incoming_count":3,"outgoing_count":1,"accepted":false,"left":true,"read_seq":2}"#;
    let c: ConversationRecord = serde_json::from_str(explicit).expect("conversation");
    assert!(!c.accepted && c.left);
    assert_eq!(c.read_seq, 2);

    let contact = r#"{"account_id":"05bb","name":"Bob","profile_name":null}"#;
    let k: ContactRecord = serde_json::from_str(contact).expect("contact");
    assert_eq!(k.handle, None);
    assert_eq!(k.name.as_deref(), Some("Bob"));

    // An incoming event from before conversations had addresses: its conversation is the
    // sender; written back without the new field.
    let old_event = r#"{"seq":1,"recorded_at_ms":5,"kind":{"type":"incoming","sender":"05bb","text":"hi","sent_at_ms":4,"received_at_ms":5,"hash":"H","sender_profile_name":null}}"#;
    let e: StoredEvent = serde_json::from_str(old_event).expect("event");
    assert_eq!(e.kind.conversation(), "05bb");
    let back = String::from_utf8(encode(&e)).expect("utf-8");
    assert!(!back.contains("conversation"), "{back}");
    assert!(!String::from_utf8(encode(&c))
        .expect("utf-8")
        .contains("title"));
}

const GROUP_ID: &str = "03dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";

#[test]
fn group_messages_belong_to_the_group_and_name_their_senders() {
    let dir = TempDir::new("group-conv");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    // A one-to-one conversation with Bob exists.
    store
        .record_received(id, 0, &[received("D1", BOB_ID, 10)], None, 11)
        .expect("direct");
    let in_group = |hash: &str, from: &str, name: Option<&str>, at: u64| Received {
        conversation: Some(GROUP_ID.to_owned()),
        sender_profile_name: name.map(str::to_owned),
        ..received(hash, from, at)
    };
    let added = store
        .record_received(
            id,
            11,
            &[
                in_group("G1", BOB_ID, Some("Bobby"), 20),
                in_group("G2", CAROL_ID, None, 21),
            ],
            Some("G2"),
            22,
        )
        .expect("group");
    // Bob's new profile name renames the one-to-one conversation: its event follows.
    let kinds: Vec<&str> = added.iter().map(|e| e.kind.conversation()).collect();
    assert_eq!(kinds, vec![GROUP_ID, BOB_ID, GROUP_ID], "{added:?}");
    // The group is a conversation of its own, accepted, with no contact of its own.
    let group = store
        .conversation(id, GROUP_ID)
        .expect("read")
        .expect("the group conversation");
    assert!(group.conversation.accepted && !group.conversation.left);
    assert_eq!(group.conversation.incoming_count, 2);
    assert_eq!(group.contact.handle, None);
    assert!(store
        .contacts(id)
        .expect("contacts")
        .iter()
        .all(|c| c.account_id != GROUP_ID));
    // The senders are contacts with handles; Carol has no conversation of her own.
    assert_eq!(
        store
            .contact(id, BOB_ID)
            .expect("bob")
            .profile_name
            .as_deref(),
        Some("Bobby")
    );
    assert!(store.contact(id, CAROL_ID).expect("carol").handle.is_some());
    assert!(store.conversation(id, CAROL_ID).expect("read").is_none());
    // The group's history is its own; Bob's one-to-one history does not hold his group post.
    let (events, _) = store
        .peer_events(id, GROUP_ID, 0, 0, 10, false)
        .expect("group history");
    assert_eq!(events.len(), 2);
    let (events, _) = store.peer_events(id, BOB_ID, 0, 0, 10, false).expect("bob");
    assert!(events
        .iter()
        .all(|e| !matches!(&e.kind, EventKind::Incoming(m) if m.hash == "G1")));
    // Replayed: nothing new.
    assert!(store
        .record_received(
            id,
            11,
            &[in_group("G1", BOB_ID, Some("Bobby"), 20)],
            None,
            30
        )
        .expect("again")
        .is_empty());
}

#[test]
fn a_version_1_file_gets_handles_and_a_peer_index_when_opened() {
    let dir = TempDir::new("upgrade");
    let id;
    {
        let store = Store::open(dir.path()).expect("open");
        id = store
            .add_identity("alice", ALICE_ID, &[1; 32], 1)
            .expect("add")
            .id;
        // Write what a version-1 daemon wrote: old JSON, no handles, no peer index.
        let tx = store.shared.db.begin_write().expect("tx");
        {
            let mut meta = tx.open_table(META).expect("meta");
            meta.insert(SCHEMA_KEY, 1).expect("version");
            let mut convs = tx.open_table(CONVERSATIONS).expect("convs");
            let bob = r#"{"peer":"BOB","last_seq":2,"last_activity_ms":7,"incoming_count":1,"outgoing_count":1}"#
                .replace("BOB", BOB_ID);
            convs.insert((id, BOB_ID), bob.as_bytes()).expect("bob");
            let carol = r#"{"peer":"CAROL","last_seq":3,"last_activity_ms":8,"incoming_count":1,"outgoing_count":0}"#
                .replace("CAROL", CAROL_ID);
            convs
                .insert((id, CAROL_ID), carol.as_bytes())
                .expect("carol");
            let mut contacts = tx.open_table(CONTACTS).expect("contacts");
            let c = r#"{"account_id":"CAROL","name":null,"profile_name":"Carol C"}"#
                .replace("CAROL", CAROL_ID);
            contacts
                .insert((id, CAROL_ID), c.as_bytes())
                .expect("contact");
            let mut events = tx.open_table(EVENTS).expect("events");
            let evs = [
                StoredEvent {
                    seq: 1,
                    recorded_at_ms: 5,
                    kind: EventKind::Outgoing {
                        message_id: "m1".into(),
                        recipient: BOB_ID.into(),
                        text: "hi".into(),
                        sent_at_ms: 5,
                        from_other_device: false,
                        extras: MessageExtras::default(),
                        attachments: Vec::new(),
                        server_id: None,
                    },
                },
                StoredEvent {
                    seq: 2,
                    recorded_at_ms: 7,
                    kind: EventKind::Incoming(received("h1", BOB_ID, 7)),
                },
                StoredEvent {
                    seq: 3,
                    recorded_at_ms: 8,
                    kind: EventKind::Incoming(received("h2", CAROL_ID, 8)),
                },
            ];
            for e in &evs {
                events
                    .insert((id, e.seq), encode(e).as_slice())
                    .expect("event");
            }
            events
                .insert((id, 4), b"not json".as_slice())
                .expect("damaged");
            tx.open_table(PEER_EVENTS)
                .expect("index")
                .retain(|_, ()| false)
                .expect("clear");
        }
        tx.commit().expect("commit");
    }
    let store = Store::open(dir.path()).expect("upgrade on open");
    let version = store
        .read("test", |tx| {
            Ok(tx.open_table(META)?.get(SCHEMA_KEY)?.map(|v| v.value()))
        })
        .expect("version");
    assert_eq!(version, Some(SCHEMA_VERSION));
    let contacts = store.contacts(id).expect("contacts");
    let handles: Vec<_> = contacts.iter().map(|c| c.handle.as_deref()).collect();
    assert_eq!(handles, vec![Some("sbbbbbbbb"), Some("Carol_C")]);
    let convs = store.conversations(id).expect("convs");
    let bob = convs
        .iter()
        .find(|v| v.conversation.address == BOB_ID)
        .expect("bob");
    assert!(bob.conversation.accepted);
    let carol = convs
        .iter()
        .find(|v| v.conversation.address == CAROL_ID)
        .expect("carol");
    assert!(!carol.conversation.accepted);
    assert_eq!(carol.contact.handle.as_deref(), Some("Carol_C"));
    let (page, _) = store.peer_events(id, BOB_ID, 0, 0, 10, false).expect("bob");
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    let (page, _) = store
        .peer_events(id, CAROL_ID, 0, 0, 10, false)
        .expect("carol");
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3]);
    // New contacts still get distinct handles after the upgrade.
    let c = store
        .set_contact_name(
            id,
            "05eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
            Some("carol c"),
            9,
        )
        .expect("name");
    assert_eq!(c.handle.as_deref(), Some("carol_c2"));
}

#[test]
fn seen_hashes_are_pruned_after_the_swarm_ttl() {
    const DAY: u64 = 24 * 3600 * 1000;
    let dir = TempDir::new("prune-seen");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    let t0 = 100 * DAY;
    store
        .record_received(id, 0, &[received("old", BOB_ID, t0)], Some("old"), t0)
        .expect("record old");
    store
        .record_received(
            id,
            0,
            &[received("new", BOB_ID, t0 + 10 * DAY)],
            Some("new"),
            t0 + 10 * DAY,
        )
        .expect("record new");
    // Within the window: kept, a re-read is still deduplicated.
    let just_before = t0 + SEEN_HASH_KEEP_MS - 1;
    assert_eq!(store.prune(just_before).expect("prune"), Pruned::default());
    let again = store
        .record_received(id, 0, &[received("old", BOB_ID, t0)], None, just_before)
        .expect("re-read");
    assert!(again.is_empty(), "{again:?}");
    // Past it: the old hash goes, the newer one stays; the events stay.
    let seq = store.last_seq(id).expect("seq");
    let after = t0 + SEEN_HASH_KEEP_MS + 1;
    assert_eq!(
        store.prune(after).expect("prune"),
        Pruned {
            seen_hashes: 1,
            idempotency_keys: 0
        }
    );
    let count = |store: &Store| {
        use redb::ReadableTableMetadata;
        store
            .read("counting", |tx| Ok(tx.open_table(SEEN_HASHES)?.len()?))
            .expect("count")
    };
    assert_eq!(count(&store), 1);
    assert_eq!(store.last_seq(id).expect("seq"), seq);
    assert_eq!(
        store.events(id, 0, 0, 100, false).expect("events").0.len() as u64,
        seq
    );
    let again = store
        .record_received(id, 0, &[received("new", BOB_ID, t0)], None, after)
        .expect("re-read");
    assert!(again.is_empty(), "the newer hash was pruned: {again:?}");
    // Nothing left to prune until the newer one is old too.
    assert_eq!(store.prune(after).expect("prune"), Pruned::default());
}

#[test]
fn idempotency_keys_expire_after_their_window() {
    let dir = TempDir::new("prune-keys");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    let keyed = |n: u8, key: &str, sent: u64| NewOutgoing {
        idempotency_key: Some(key.to_owned()),
        sent_at_ms: sent,
        ..outgoing(n, BOB_ID)
    };
    let t0 = 1_000_000;
    queue(&store, id, keyed(1, "early", t0), t0);
    queue(
        &store,
        id,
        keyed(2, "later", t0 + 3_600_000),
        t0 + 3_600_000,
    );
    assert_eq!(
        store.prune(t0 + IDEMPOTENCY_KEEP_MS).expect("prune"),
        Pruned::default()
    );
    assert!(store.sent_key(id, "early").expect("read").is_some());
    assert_eq!(
        store.prune(t0 + IDEMPOTENCY_KEEP_MS + 1).expect("prune"),
        Pruned {
            seen_hashes: 0,
            idempotency_keys: 1
        }
    );
    assert_eq!(store.sent_key(id, "early").expect("read"), None);
    assert!(store.sent_key(id, "later").expect("read").is_some());
    // The expired key queues a new message; the live one is still a duplicate.
    let now = t0 + IDEMPOTENCY_KEEP_MS + 2;
    queue(&store, id, keyed(3, "early", now), now);
    match store
        .queue_outgoing(id, keyed(4, "later", now), now)
        .expect("again")
    {
        Queued::Duplicate(k) => assert_eq!(k.sent_at_ms, t0 + 3_600_000),
        Queued::New { .. } => panic!("a live key queued a message"),
    }
}

/// The size of the store's file.
fn file_size(store: &Store) -> u64 {
    fs::metadata(store.file()).expect("file").len()
}

/// Records `n` received messages (distinct hashes) at `at`.
fn fill(store: &Store, id: IdentityId, tag: &str, n: usize, at: u64) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        let batch: Vec<Received> = chunk
            .iter()
            .map(|i| received(&format!("{tag}-{i:05}"), BOB_ID, at))
            .collect();
        store
            .record_received(id, 0, &batch, None, at)
            .expect("record");
    }
}

/// A store whose file was copied while open (what a SIGKILL between two commits leaves) and
/// then opened (repaired, compacted) for the next batch, five times over, stays within 1.2× the
/// size of one that was never crashed, and keeps every committed event.
#[test]
fn a_store_crashed_again_and_again_stays_near_a_clean_ones_size() {
    const BATCHES: usize = 5;
    const PER_BATCH: usize = 400;
    let clean_dir = TempDir::new("grow-clean");
    let clean = Store::open(clean_dir.path()).expect("open");
    let id = clean
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    for b in 0..BATCHES {
        fill(&clean, id, &format!("b{b}"), PER_BATCH, 10);
    }
    drop(clean);
    let clean = Store::open(clean_dir.path()).expect("reopen");
    let clean_size = file_size(&clean);

    let dirs: Vec<TempDir> = (0..=BATCHES)
        .map(|i| TempDir::new(&format!("grow-crash-{i}")))
        .collect();
    let mut store = Store::open(dirs[0].path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    for b in 0..BATCHES {
        fill(&store, id, &format!("b{b}"), PER_BATCH, 10);
        // The crash: the file as it is while the store is open, never closed.
        prepare_dir(dirs[b + 1].path()).expect("dir");
        fs::copy(store.file(), dirs[b + 1].path().join(DB_FILE)).expect("copy");
        drop(store);
        store = Store::open(dirs[b + 1].path()).expect("the crashed copy opens");
    }
    let crashed_size = file_size(&store);
    assert_eq!(
        store
            .events(id, 0, 0, 10_000, false)
            .expect("events")
            .0
            .len(),
        BATCHES * PER_BATCH,
        "nothing committed is lost"
    );
    eprintln!("store file: {clean_size} bytes clean, {crashed_size} bytes after {BATCHES} crashes");
    assert!(
        crashed_size * 10 <= clean_size * 12,
        "{crashed_size} bytes after crashes vs {clean_size} clean"
    );
}

/// Pages that prune frees are given back to the file system at the next open (without the
/// compaction at open, the reopened file was larger than before).
#[test]
fn what_prune_frees_is_given_back_at_the_next_open() {
    const DAY: u64 = 24 * 3600 * 1000;
    let dir = TempDir::new("prune-compact");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    fill(&store, id, "old", 2_000, DAY);
    let now = DAY + SEEN_HASH_KEEP_MS + 1;
    assert_eq!(store.prune(now).expect("prune").seen_hashes, 2_000);
    let pruned_size = file_size(&store);
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    let reopened = file_size(&store);
    eprintln!("store file: {pruned_size} bytes after prune, {reopened} after reopening");
    assert!(reopened < pruned_size, "{reopened} !< {pruned_size}");
    assert_eq!(
        store
            .events(id, 0, 0, 10_000, false)
            .expect("events")
            .0
            .len(),
        2_000,
        "the events stay"
    );
}

// ------------------------------------------------------------------------------------------------
// Interactions: replies, reactions, unsend, receipts, disappearing messages, notices
// ------------------------------------------------------------------------------------------------

fn control(n: u8, to: &str) -> ControlOut {
    ControlOut {
        message_id: format!("c{n:031x}"),
        recipient: to.to_owned(),
        payload: vec![n; 4],
        sent_at_ms: 9_000 + u64::from(n),
        ttl_ms: 1_000,
        namespace: 0,
    }
}

fn inbound(hash: &str, from: &str, what: InboundKind) -> Inbound {
    Inbound {
        hash: hash.to_owned(),
        sender: from.to_owned(),
        conversation: from.to_owned(),
        sent_at_ms: 5_000,
        what,
    }
}

fn ignored_reason(e: &StoredEvent) -> Option<&str> {
    match &e.kind {
        EventKind::Notice {
            notice: NoticeKind::Ignored { reason },
            ..
        } => Some(reason),
        _ => None,
    }
}

#[test]
fn replies_find_the_quoted_message_and_reactions_need_a_known_target() {
    let dir = TempDir::new("replies");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    store
        .record_received(id, 0, &[received("H1", BOB_ID, 1_000)], None, 10)
        .expect("record");
    let mut reply = outgoing(1, BOB_ID);
    reply.extras.reply_to = Some(ReplyRef {
        sent_at_ms: 1_000,
        author: BOB_ID.to_owned(),
        seq: None,
        excerpt: None,
    });
    let (event, _) = queue(&store, id, reply, 20);
    match &event.kind {
        EventKind::Outgoing { extras, .. } => {
            let r = extras.reply_to.as_ref().expect("a reply");
            assert_eq!(r.seq, Some(1));
            assert_eq!(r.excerpt.as_deref(), Some("text H1"));
        }
        other => panic!("{other:?}"),
    }
    assert!(store.has_message(id, BOB_ID, 1_000, BOB_ID).expect("look"));
    assert!(!store
        .has_message(id, BOB_ID, 1_000, ALICE_ID)
        .expect("look"));
    assert!(!store
        .has_message(id, CAROL_ID, 1_000, BOB_ID)
        .expect("look"));

    // Bob reacts to our reply; then to a message nobody sent.
    let got = store
        .record_inbound(
            id,
            &[
                inbound(
                    "R1",
                    BOB_ID,
                    InboundKind::Reaction {
                        target_sent_at_ms: 1_001,
                        target_author: ALICE_ID.to_owned(),
                        emoji: "👍".to_owned(),
                        remove: false,
                    },
                ),
                inbound(
                    "R2",
                    BOB_ID,
                    InboundKind::Reaction {
                        target_sent_at_ms: 77,
                        target_author: ALICE_ID.to_owned(),
                        emoji: "👍".to_owned(),
                        remove: true,
                    },
                ),
            ],
            Some((0, "R2")),
            30,
        )
        .expect("inbound");
    assert_eq!(got.len(), 2);
    assert!(
        matches!(&got[0].kind, EventKind::Reaction { target_seq, removed: false, author, .. }
        if *target_seq == event.seq && author == BOB_ID)
    );
    assert!(ignored_reason(&got[1]).is_some());
    assert_eq!(
        store.last_hash(id, 0).expect("cursor").as_deref(),
        Some("R2")
    );
    // A repeat is recorded once.
    let again = store
        .record_inbound(
            id,
            &[inbound(
                "R1",
                BOB_ID,
                InboundKind::Unsend {
                    target_sent_at_ms: 1,
                },
            )],
            None,
            31,
        )
        .expect("inbound");
    assert!(again.is_empty());

    // Our own reaction to an unknown message is refused.
    let err = store
        .react(id, BOB_ID, 5, BOB_ID, "x", false, control(1, BOB_ID), 40)
        .expect_err("unknown");
    assert!(matches!(err, StoreError::UnknownMessage { .. }));
    let mine = store
        .react(
            id,
            BOB_ID,
            1_000,
            BOB_ID,
            "🎉",
            false,
            control(2, BOB_ID),
            41,
        )
        .expect("react");
    assert!(matches!(mine.kind, EventKind::Reaction { ref author, .. } if author == ALICE_ID));
    // The reaction's control message waits in the outbox and records no delivery event.
    let entry = store
        .outbox()
        .expect("outbox")
        .into_iter()
        .find(|e| e.control)
        .expect("a control entry");
    assert_eq!(store.outbox_sent(entry.id, "CH", 50).expect("sent"), None);
}

#[test]
fn group_deletions_remove_the_senders_own_messages_and_with_an_admin_signature_anyones() {
    let dir = TempDir::new("group-delete");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    let in_group = |hash: &str, from: &str, at: u64| Received {
        conversation: Some(GROUP_ID.to_owned()),
        ..received(hash, from, at)
    };
    store
        .record_received(
            id,
            11,
            &[
                in_group("GB", BOB_ID, 1_000),
                in_group("GC", CAROL_ID, 1_001),
            ],
            None,
            10,
        )
        .expect("record");
    let delete_as = |hash: &str, from: &str, hashes: &[&str], members: &[&str], by_admin| Inbound {
        conversation: GROUP_ID.to_owned(),
        ..inbound(
            hash,
            from,
            InboundKind::DeleteHashes {
                hashes: hashes.iter().map(|h| (*h).to_owned()).collect(),
                members: members.iter().map(|m| (*m).to_owned()).collect(),
                by_admin,
            },
        )
    };
    let delete =
        |hash: &str, from: &str, hashes: &[&str]| delete_as(hash, from, hashes, &[], false);
    // Carol cannot delete Bob's message; an unknown hash deletes nothing.
    let got = store
        .record_inbound(
            id,
            &[
                delete("D1", CAROL_ID, &["GB"]),
                delete("D2", BOB_ID, &["nope"]),
            ],
            None,
            20,
        )
        .expect("inbound");
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|e| ignored_reason(e).is_some()), "{got:?}");
    assert!(store
        .has_message(id, GROUP_ID, 1_000, BOB_ID)
        .expect("look"));
    // Bob deletes his own message (naming Carol's too, which stays).
    let got = store
        .record_inbound(id, &[delete("D3", BOB_ID, &["GB", "GC"])], None, 30)
        .expect("inbound");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(matches!(
        &got[0].kind,
        EventKind::Removed {
            reason: RemovedReason::Unsent,
            ..
        }
    ));
    assert!(!store
        .has_message(id, GROUP_ID, 1_000, BOB_ID)
        .expect("look"));
    assert!(store
        .has_message(id, GROUP_ID, 1_001, CAROL_ID)
        .expect("look"));
    // Unsigned, a member list means nothing.
    let got = store
        .record_inbound(
            id,
            &[delete_as("D4", BOB_ID, &[], &[CAROL_ID], false)],
            None,
            40,
        )
        .expect("inbound");
    assert!(ignored_reason(&got[0]).is_some(), "{got:?}");
    // An admin's signed deletion: Carol's message by hash, and every message of Dave.
    const DAVE_ID: &str = "05dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
    store
        .record_received(
            id,
            11,
            &[
                in_group("GD1", DAVE_ID, 1_002),
                in_group("GD2", DAVE_ID, 1_003),
            ],
            None,
            50,
        )
        .expect("record");
    let got = store
        .record_inbound(
            id,
            &[delete_as("D5", BOB_ID, &["GC"], &[DAVE_ID], true)],
            None,
            60,
        )
        .expect("inbound");
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().all(|e| matches!(
        &e.kind,
        EventKind::Removed {
            reason: RemovedReason::Deleted,
            ..
        }
    )));
    for (at, who) in [(1_001, CAROL_ID), (1_002, DAVE_ID), (1_003, DAVE_ID)] {
        assert!(!store.has_message(id, GROUP_ID, at, who).expect("look"));
    }

    // Alice's own posts: three stored (their deliveries name the swarm hashes), one queued.
    let mine = |n: u8| NewOutgoing {
        namespace: 11,
        ..outgoing(n, GROUP_ID)
    };
    for n in 1..=3 {
        let (_, entry) = queue(&store, id, mine(n), 70);
        store
            .outbox_sent(entry.id, &format!("GA{n}"), 71)
            .expect("sent");
    }
    queue(&store, id, mine(4), 72);
    let still = |n: u8| {
        store
            .has_message(id, GROUP_ID, 1_000 + u64::from(n), ALICE_ID)
            .expect("look")
    };
    // A member cannot delete them, even naming their hashes or alice.
    let got = store
        .record_inbound(
            id,
            &[delete_as("D6", BOB_ID, &["GA1"], &[ALICE_ID], false)],
            None,
            80,
        )
        .expect("inbound");
    assert!(ignored_reason(&got[0]).is_some(), "{got:?}");
    assert!(still(1));
    // An admin deletes one by hash.
    let got = store
        .record_inbound(
            id,
            &[delete_as("D7", BOB_ID, &["GA1"], &[], true)],
            None,
            90,
        )
        .expect("inbound");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(matches!(
        &got[0].kind,
        EventKind::Removed { reason: RemovedReason::Deleted, author, .. } if author == ALICE_ID
    ));
    assert!(!still(1) && still(2) && still(3));
    // An admin deletes all of alice's posts: the stored ones; the queued one is the sender's.
    let got = store
        .record_inbound(
            id,
            &[delete_as("D8", BOB_ID, &[], &[ALICE_ID], true)],
            None,
            100,
        )
        .expect("inbound");
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(!still(2) && !still(3) && still(4));
}

#[test]
fn unsend_removes_only_the_authors_own_message() {
    let dir = TempDir::new("unsend");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    store
        .record_received(
            id,
            0,
            &[
                received("B1", BOB_ID, 1_000),
                received("C1", CAROL_ID, 1_000),
            ],
            None,
            10,
        )
        .expect("record");
    let (mine, _) = queue(&store, id, outgoing(1, BOB_ID), 20);
    // Carol cannot unsend Bob's message (the lookup is by her own messages, in her
    // conversation), and Bob cannot unsend ours.
    let got = store
        .record_inbound(
            id,
            &[
                inbound(
                    "U1",
                    CAROL_ID,
                    InboundKind::Unsend {
                        target_sent_at_ms: 1_001,
                    },
                ),
                Inbound {
                    conversation: BOB_ID.to_owned(),
                    ..inbound(
                        "U2",
                        CAROL_ID,
                        InboundKind::Unsend {
                            target_sent_at_ms: 1_000,
                        },
                    )
                },
                inbound(
                    "U3",
                    BOB_ID,
                    InboundKind::Unsend {
                        target_sent_at_ms: 1_001,
                    },
                ),
            ],
            None,
            30,
        )
        .expect("inbound");
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|e| ignored_reason(e).is_some()), "{got:?}");
    assert!(store.has_message(id, BOB_ID, 1_000, BOB_ID).expect("look"));
    assert!(store
        .has_message(id, BOB_ID, 1_001, ALICE_ID)
        .expect("look"));
    // Bob unsends his own message: it leaves the log and his swarm copy is to be deleted.
    let got = store
        .record_inbound(
            id,
            &[inbound(
                "U4",
                BOB_ID,
                InboundKind::Unsend {
                    target_sent_at_ms: 1_000,
                },
            )],
            None,
            40,
        )
        .expect("inbound");
    assert!(matches!(
        &got[0].kind,
        EventKind::Removed {
            removed_seq: 1,
            reason: RemovedReason::Unsent,
            ..
        }
    ));
    let (events, _) = store
        .peer_events(id, BOB_ID, 0, 0, 100, false)
        .expect("events");
    assert!(events.iter().all(|e| e.seq != 1), "the message is gone");
    assert!(store
        .swarm_chores()
        .expect("chores")
        .iter()
        .any(|c| c.hash == "B1" && c.chore == Chore::Delete));
    // A re-read of the swarm does not bring it back.
    assert!(store
        .record_received(id, 0, &[received("B1", BOB_ID, 1_000)], None, 50)
        .expect("record")
        .is_empty());
    // We unsend ours; someone else's is not ours to unsend.
    assert!(matches!(
        store.unsend(id, BOB_ID, 1_000, control(3, BOB_ID), 60),
        Err(StoreError::UnknownMessage { .. })
    ));
    let removed = store
        .unsend(id, BOB_ID, 1_001, control(4, BOB_ID), 61)
        .expect("unsend");
    assert!(
        matches!(removed.kind, EventKind::Removed { removed_seq, .. } if removed_seq == mine.seq)
    );
}

#[test]
fn receipts_mark_our_messages_read_and_timers_purge() {
    let dir = TempDir::new("timers");
    let store = Store::open(dir.path()).expect("open");
    let id = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add")
        .id;
    let ten = ExpirySetting {
        after_read: false,
        seconds: 10,
    };
    let mut msg = outgoing(1, BOB_ID);
    msg.extras.expiry = Some(ten);
    let (mine, _) = queue(&store, id, msg, 1_001);
    match &mine.kind {
        EventKind::Outgoing { extras, .. } => assert_eq!(extras.expires_at_ms, Some(11_001)),
        other => panic!("{other:?}"),
    }
    let got = store
        .record_inbound(
            id,
            &[
                inbound(
                    "RC",
                    BOB_ID,
                    InboundKind::ReadReceipt {
                        sent_at_ms: vec![1_001, 3],
                    },
                ),
                inbound(
                    "RX",
                    BOB_ID,
                    InboundKind::ReadReceipt {
                        sent_at_ms: vec![4],
                    },
                ),
                inbound("T1", BOB_ID, InboundKind::Timer { expiry: Some(ten) }),
            ],
            None,
            2_000,
        )
        .expect("inbound");
    assert!(matches!(
        &got[0].kind,
        EventKind::Delivery {
            state: DeliveryState::Read,
            ..
        }
    ));
    assert!(ignored_reason(&got[1]).is_some());
    assert_eq!(store.disappearing(id, BOB_ID).expect("timer"), Some(ten));

    // An after-read message from Bob starts its timer when read.
    let mut r = received("B9", BOB_ID, 3_000);
    r.extras.expiry = Some(ExpirySetting {
        after_read: true,
        seconds: 5,
    });
    let added = store
        .record_received(id, 0, &[r], None, 3_000)
        .expect("record");
    let bob_seq = added[0].seq;
    assert_eq!(store.next_purge().expect("next"), Some(11_001));
    let effects = store
        .messages_read(id, BOB_ID, 0, bob_seq, 4_000)
        .expect("read");
    assert_eq!(effects.read_sent_at_ms, vec![3_000]);
    assert_eq!(effects.timers_started, 1);
    // Reading again starts nothing new.
    let again = store
        .messages_read(id, BOB_ID, 0, bob_seq, 4_500)
        .expect("read");
    assert_eq!(again.timers_started, 0);
    assert!(store.swarm_chores().expect("chores").contains(&SwarmChore {
        identity: id,
        hash: "B9".into(),
        chore: Chore::Expire { at_ms: 9_000 }
    }));
    assert_eq!(store.next_purge().expect("next"), Some(9_000));
    assert!(store.purge_expired(8_999).expect("purge").is_empty());
    let purged = store.purge_expired(9_000).expect("purge");
    assert_eq!(purged.len(), 1);
    assert!(
        matches!(purged[0].event.kind, EventKind::Removed { removed_seq, reason: RemovedReason::Expired, .. } if removed_seq == bob_seq)
    );
    let purged = store.purge_expired(20_000).expect("purge");
    assert!(
        matches!(purged[0].event.kind, EventKind::Removed { removed_seq, .. } if removed_seq == mine.seq)
    );
    assert_eq!(store.next_purge().expect("next"), None);
    let (events, _) = store.events(id, 0, 0, 100, false).expect("events");
    assert!(events.iter().all(|e| e.seq != bob_seq && e.seq != mine.seq));

    // Settings default to receipts on.
    assert!(store.identity_settings(id).expect("settings").read_receipts);
    store
        .set_identity_settings(
            id,
            IdentitySettings {
                read_receipts: false,
            },
        )
        .expect("set");
    assert!(!store.identity_settings(id).expect("settings").read_receipts);
    store.remove_identity("alice").expect("remove");
    assert!(store.swarm_chores().expect("chores").is_empty());
}

/// Group commit: writers on many threads at once each get their own answer, only after their
/// data is durable (it is there after a reopen), in the order each thread wrote; a write that
/// fails (an unknown identity) fails alone; a repeated idempotency key within one shared
/// transaction is still a duplicate.
#[test]
fn concurrent_sends_are_all_durable_and_ordered() {
    const THREADS: usize = 16;
    const PER_THREAD: usize = 20;
    let dir = TempDir::new("group-commit");
    let store = Store::open(dir.path()).expect("open");
    let a = store
        .add_identity("alice", ALICE_ID, &[1; 32], 1)
        .expect("add");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(THREADS + 1));
    let mut threads = Vec::new();
    for t in 0..THREADS {
        let (store, barrier) = (store.clone(), std::sync::Arc::clone(&barrier));
        threads.push(std::thread::spawn(move || {
            barrier.wait();
            let mut seqs = Vec::new();
            for i in 0..PER_THREAD {
                let mut msg = outgoing(0, BOB_ID);
                msg.message_id = format!("{t:016x}{i:016x}");
                msg.text = format!("t{t} m{i}");
                // Every thread repeats one key its neighbour also uses: one of each pair wins.
                msg.idempotency_key = (i == 0).then(|| format!("shared-{}", t / 2));
                match store.queue_outgoing(a.id, msg, 10).expect("queue") {
                    Queued::New { event, .. } => seqs.push(event.seq),
                    Queued::Duplicate(first) => {
                        assert!(first.message_id.ends_with(&format!("{:016x}", 0)))
                    }
                }
                if i == PER_THREAD / 2 {
                    // A failing write among the others: its own error, nobody else's.
                    let err = store.queue_outgoing(999, outgoing(1, BOB_ID), 10);
                    assert!(
                        matches!(err, Err(StoreError::UnknownIdentity { .. })),
                        "{err:?}"
                    );
                }
            }
            seqs
        }));
    }
    barrier.wait();
    let mut all = Vec::new();
    for t in threads {
        let seqs = t.join().expect("writer");
        // Each thread's writes are in the log in the order it made them.
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        all.extend(seqs);
    }
    // Half the first messages were duplicates of their neighbour's.
    assert_eq!(all.len(), THREADS * PER_THREAD - THREADS / 2);
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        THREADS * PER_THREAD - THREADS / 2,
        "no seq handed out twice"
    );
    drop(store);

    let store = Store::open(dir.path()).expect("reopen");
    let outbox = store.outbox().expect("outbox");
    assert_eq!(outbox.len(), THREADS * PER_THREAD - THREADS / 2);
    let (events, _) = store.events(a.id, 0, 0, 10_000, false).expect("events");
    let outgoing_seqs: Vec<u64> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Outgoing { .. }))
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        outgoing_seqs, all,
        "every answered write is in the log after a reopen"
    );
    for t in 0..THREADS {
        let texts: Vec<String> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Outgoing { text, .. } if text.starts_with(&format!("t{t} ")) => {
                    Some(text.clone())
                }
                _ => None,
            })
            .collect();
        let expect: Vec<String> = (0..PER_THREAD)
            .map(|i| format!("t{t} m{i}"))
            .filter(|s| !s.ends_with(" m0") || texts.contains(s))
            .collect();
        assert_eq!(texts, expect);
    }
}

#[test]
fn outbox_payloads_are_base64_and_older_number_arrays_still_read() {
    let entry = OutboxEntry {
        id: 7,
        identity: 1,
        message_id: "m".into(),
        recipient: "05ab".into(),
        payload: vec![0, 1, 2, 250, 255],
        namespace: 0,
        sent_at_ms: 1,
        ttl_ms: 2,
        attempts: 0,
        next_try_ms: 3,
        last_error: None,
        event_seq: 4,
        sync_copy: false,
        held_copy: None,
        control: false,
    };
    let json = String::from_utf8(encode(&entry)).expect("utf-8");
    assert!(json.contains("\"payload\":\"AAEC+v8=\""), "{json}");
    let back: OutboxEntry = decode("outbox", json.as_bytes()).expect("decode");
    assert_eq!(back, entry);
    // A record written before: the payload as an array of numbers.
    let old = json.replace("\"AAEC+v8=\"", "[0,1,2,250,255]");
    let back: OutboxEntry = decode("outbox", old.as_bytes()).expect("decode old");
    assert_eq!(back, entry);
    // Malformed payloads are errors, not panics.
    for bad in ["\"not base64!\"", "[0,1,256]", "{}", "12"] {
        let broken = json.replace("\"AAEC+v8=\"", bad);
        assert!(
            decode::<OutboxEntry>("outbox", broken.as_bytes()).is_err(),
            "{bad}"
        );
    }
}
