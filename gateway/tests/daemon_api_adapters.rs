//! The RPCs the IRC and Matrix adapters build on, against real `sessiond` processes: WhoAmI,
//! RevokeToken, SetProfile, scoped CreateToken; Open/Leave/MarkRead/SetContactHandle with their
//! ConversationChanged events; idempotent Send; History by peer; SendTyping. Offline daemons for
//! the API's rules, and two daemons on a devnet for typing notices and profile names crossing
//! the network.

#[path = "support/daemon.rs"]
mod support;

use std::time::{Duration, Instant};

use sessiond_api::v1::{
    event, Conversation, CreateIdentityRequest, CreateTokenRequest, Event, GetIdentityRequest,
    LeaveConversationRequest, ListContactsRequest, ListConversationsRequest, ListEventsRequest,
    ListEventsResponse, ListIdentitiesRequest, MarkConversationReadRequest,
    OpenConversationRequest, RevokeTokenRequest, SendMessageRequest, SendMessageResponse,
    SendTypingRequest, SetContactHandleRequest, SetContactNameRequest, SetProfileRequest,
    SubscribeRequest, SubscribeResponse, WhoAmIRequest,
};
use support::{
    bearer, clients, net, networked_command, some_account_id, Clients, Daemon, Net, TempDir,
    FAST_CONFIG,
};
use tonic::{Code, Streaming};

/// Every wait in these tests ends by this.
const DEADLINE: Duration = Duration::from_secs(60);

async fn create(c: &mut Clients, name: &str) -> String {
    c.ids
        .create_identity(CreateIdentityRequest { name: name.into() })
        .await
        .expect("create identity")
        .into_inner()
        .identity
        .expect("identity")
        .account_id
}

async fn token(c: &mut Clients, name: &str) -> String {
    c.ids
        .create_token(CreateTokenRequest {
            name: name.into(),
            label: "test".into(),
        })
        .await
        .expect("create token")
        .into_inner()
        .token
}

async fn revoke(c: &mut Clients, token: &str) -> Result<bool, tonic::Status> {
    c.ids
        .revoke_token(RevokeTokenRequest {
            token: token.into(),
        })
        .await
        .map(|r| r.into_inner().revoked)
}

async fn send_keyed(
    c: &mut Clients,
    from: &str,
    to: &str,
    text: &str,
    key: &str,
) -> Result<SendMessageResponse, tonic::Status> {
    c.msgs
        .send_message(SendMessageRequest {
            identity: from.into(),
            recipient: to.into(),
            text: text.into(),
            idempotency_key: key.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn history_of(c: &mut Clients, identity: &str, peer: &str) -> Vec<Event> {
    c.msgs
        .list_events(ListEventsRequest {
            identity: identity.into(),
            page_size: 1000,
            peer: peer.into(),
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner()
        .events
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

fn changed(e: &Event) -> Option<&Conversation> {
    match &e.kind {
        Some(event::Kind::Conversation(c)) => c.conversation.as_ref(),
        _ => None,
    }
}

async fn last_seq(c: &mut Clients, identity: &str) -> u64 {
    c.ids
        .list_identities(ListIdentitiesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .identities
        .into_iter()
        .find(|i| i.name == identity)
        .expect("identity listed")
        .last_seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_am_i_scoped_tokens_and_revocation() {
    let dir = TempDir::new("adapters-tokens");
    let daemon = Daemon::start(dir.path());
    let channel = daemon.channel().await;
    let mut admin = clients(&channel, bearer(&daemon.admin_token));
    let alice_id = create(&mut admin, "alice").await;
    create(&mut admin, "bob").await;

    let who = admin
        .ids
        .who_am_i(WhoAmIRequest {})
        .await
        .expect("whoami")
        .into_inner();
    assert!(who.admin);
    assert!(who.identity.is_none());

    let tok_a = token(&mut admin, "alice").await;
    let mut a = clients(&channel, bearer(&tok_a));
    let who = a
        .ids
        .who_am_i(WhoAmIRequest {})
        .await
        .expect("whoami")
        .into_inner();
    assert!(!who.admin);
    let me = who.identity.expect("scoped token names its identity");
    assert_eq!(
        (me.name.as_str(), me.account_id.as_str()),
        ("alice", alice_id.as_str())
    );

    // A scoped token makes tokens for its own identity only; an unknown name looks the same.
    let tok_a2 = token(&mut a, "alice").await;
    for name in ["bob", "nobody"] {
        let err = a
            .ids
            .create_token(CreateTokenRequest {
                name: name.into(),
                label: String::new(),
            })
            .await
            .expect_err("another identity");
        assert_eq!(err.code(), Code::PermissionDenied, "{name}: {err:?}");
    }
    let err = admin
        .ids
        .create_token(CreateTokenRequest {
            name: "nobody".into(),
            label: String::new(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);

    // Revocation: not another identity's token, never the admin token.
    let tok_b = token(&mut admin, "bob").await;
    let mut b = clients(&channel, bearer(&tok_b));
    let err = revoke(&mut a, &tok_b).await.expect_err("bob's token");
    assert_eq!(err.code(), Code::PermissionDenied);
    b.ids
        .who_am_i(WhoAmIRequest {})
        .await
        .expect("bob's token still works");
    for caller in [&mut a, &mut admin] {
        let err = revoke(caller, &daemon.admin_token)
            .await
            .expect_err("the admin token");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("admin.token"), "{}", err.message());
    }
    // Unknown or malformed: simply not revoked.
    for junk in [
        "",
        "   ",
        "has spaces in it",
        &"0".repeat(64),
        &"x".repeat(5000),
    ] {
        assert!(!revoke(&mut a, junk).await.expect("junk"), "{junk:?}");
    }

    // Revoking a sibling token, then itself.
    assert!(revoke(&mut a, &tok_a2).await.expect("sibling"));
    let mut a2 = clients(&channel, bearer(&tok_a2));
    let err = a2
        .ids
        .who_am_i(WhoAmIRequest {})
        .await
        .expect_err("revoked");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(revoke(&mut a, &tok_a).await.expect("itself"));
    let err = a.ids.who_am_i(WhoAmIRequest {}).await.expect_err("revoked");
    assert_eq!(err.code(), Code::Unauthenticated);
    // Logging out twice is harmless.
    assert!(!revoke(&mut admin, &tok_a).await.expect("twice"));
    // The admin revokes anyone's.
    assert!(revoke(&mut admin, &tok_b).await.expect("admin"));
    let err = b
        .msgs
        .list_events(ListEventsRequest {
            identity: "bob".into(),
            ..Default::default()
        })
        .await
        .expect_err("revoked");
    assert_eq!(err.code(), Code::Unauthenticated);
    // The admin token is untouched by all this.
    admin.ids.who_am_i(WhoAmIRequest {}).await.expect("admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_profile_validates_and_shows_everywhere() {
    let dir = TempDir::new("adapters-profile");
    let daemon = Daemon::start(dir.path());
    let channel = daemon.channel().await;
    let mut admin = clients(&channel, bearer(&daemon.admin_token));
    create(&mut admin, "alice").await;
    create(&mut admin, "bob").await;
    let tok = token(&mut admin, "alice").await;
    let mut a = clients(&channel, bearer(&tok));

    let set = |name: &str, display: &str| SetProfileRequest {
        name: name.into(),
        display_name: display.into(),
    };
    let id = a
        .ids
        .set_profile(set("alice", "  Alice Liddell "))
        .await
        .expect("set")
        .into_inner()
        .identity
        .expect("identity");
    assert_eq!(id.display_name, "Alice Liddell");
    let listed = admin
        .ids
        .list_identities(ListIdentitiesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .identities;
    assert_eq!(listed[0].display_name, "Alice Liddell");
    assert_eq!(listed[1].display_name, "");
    let who = a
        .ids
        .who_am_i(WhoAmIRequest {})
        .await
        .expect("whoami")
        .into_inner();
    assert_eq!(
        who.identity.expect("identity").display_name,
        "Alice Liddell"
    );

    for (req, code) in [
        (set("alice", &"n".repeat(101)), Code::InvalidArgument),
        (set("alice", "two\nlines"), Code::InvalidArgument),
        (set("alice", "bell\u{7}"), Code::InvalidArgument),
        (set("a b", "x"), Code::InvalidArgument),
        (set("bob", "x"), Code::PermissionDenied),
        (set("nobody", "x"), Code::PermissionDenied),
    ] {
        let err = a.ids.set_profile(req.clone()).await.expect_err("refused");
        assert_eq!(err.code(), code, "{req:?}: {err:?}");
    }
    let err = admin
        .ids
        .set_profile(set("nobody", "x"))
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    // 100 characters (not bytes) fit.
    admin
        .ids
        .set_profile(set("bob", &"é".repeat(100)))
        .await
        .expect("100 characters");
    // Empty clears it.
    let id = a
        .ids
        .set_profile(set("alice", ""))
        .await
        .expect("clear")
        .into_inner()
        .identity
        .expect("identity");
    assert_eq!(id.display_name, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_open_leave_mark_read_and_handles() {
    let dir = TempDir::new("adapters-convs");
    let daemon = Daemon::start(dir.path());
    let channel = daemon.channel().await;
    let mut admin = clients(&channel, bearer(&daemon.admin_token));
    create(&mut admin, "alice").await;
    create(&mut admin, "bob").await;
    let peer = some_account_id(1);
    let other = some_account_id(2);
    let open = |account_id: &str| OpenConversationRequest {
        identity: "alice".into(),
        account_id: account_id.into(),
    };
    let leave = |account_id: &str| LeaveConversationRequest {
        identity: "alice".into(),
        account_id: account_id.into(),
    };
    let read = |account_id: &str, seq: u64| MarkConversationReadRequest {
        identity: "alice".into(),
        account_id: account_id.into(),
        seq,
    };
    let handle = |account_id: &str, handle: &str| SetContactHandleRequest {
        identity: "alice".into(),
        account_id: account_id.into(),
        handle: handle.into(),
    };

    // Bad Account IDs everywhere; unknown conversations for Leave and MarkRead.
    let bad_ids = [
        String::new(),
        peer[..60].to_owned(),
        format!("03{}", &peer[2..]),
        format!("05{}", "zz".repeat(32)),
    ];
    for bad in &bad_ids {
        let err = admin
            .convs
            .open_conversation(open(bad))
            .await
            .expect_err("bad id");
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
        // A group ID is a conversation address (there is just no such conversation); only
        // Open wants a person.
        let code = if bad.starts_with("03") {
            Code::NotFound
        } else {
            Code::InvalidArgument
        };
        let err = admin
            .convs
            .leave_conversation(leave(bad))
            .await
            .expect_err("bad id");
        assert_eq!(err.code(), code, "{bad:?}");
        let err = admin
            .convs
            .mark_conversation_read(read(bad, 0))
            .await
            .expect_err("bad id");
        assert_eq!(err.code(), code, "{bad:?}");
        let err = admin
            .convs
            .set_contact_handle(handle(bad, "ok"))
            .await
            .expect_err("bad id");
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
    }
    let err = admin
        .convs
        .leave_conversation(leave(&peer))
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    let err = admin
        .convs
        .mark_conversation_read(read(&peer, 0))
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        last_seq(&mut admin, "alice").await,
        0,
        "refusals record nothing"
    );

    // Open: accepted, a derived handle, one event; opening again records nothing.
    let conv = admin
        .convs
        .open_conversation(open(&peer))
        .await
        .expect("open")
        .into_inner()
        .conversation
        .expect("conversation");
    assert!(conv.accepted && !conv.left);
    assert_eq!(conv.handle, "s01010101");
    assert_eq!(
        (conv.last_seq, conv.read_seq, conv.last_activity_ms),
        (0, 0, 0)
    );
    admin
        .convs
        .open_conversation(open(&peer))
        .await
        .expect("open again");
    assert_eq!(last_seq(&mut admin, "alice").await, 1);

    // A message in an accepted conversation changes no state: no event besides its own.
    let sent = send_keyed(&mut admin, "alice", &peer, "hi", "")
        .await
        .expect("send");
    assert_eq!(sent.seq, 2);
    assert_eq!(last_seq(&mut admin, "alice").await, 2);

    // MarkRead: forward only, not past the end of the log.
    let conv = admin
        .convs
        .mark_conversation_read(read(&peer, 2))
        .await
        .expect("read")
        .into_inner()
        .conversation
        .expect("conversation");
    assert_eq!((conv.read_seq, conv.last_seq), (2, 2));
    let err = admin
        .convs
        .mark_conversation_read(read(&peer, 99))
        .await
        .expect_err("past the end");
    assert_eq!(err.code(), Code::InvalidArgument);
    let conv = admin
        .convs
        .mark_conversation_read(read(&peer, 1))
        .await
        .expect("older")
        .into_inner()
        .conversation
        .expect("conversation");
    assert_eq!(conv.read_seq, 2);
    assert_eq!(last_seq(&mut admin, "alice").await, 3);

    // Leave (event 4), leave again (nothing); writing again accepts it (Outgoing 5 + change 6).
    let conv = admin
        .convs
        .leave_conversation(leave(&peer))
        .await
        .expect("leave")
        .into_inner()
        .conversation
        .expect("conversation");
    assert!(conv.left);
    admin
        .convs
        .leave_conversation(leave(&peer))
        .await
        .expect("leave again");
    assert_eq!(last_seq(&mut admin, "alice").await, 4);
    send_keyed(&mut admin, "alice", &peer, "back", "")
        .await
        .expect("send");
    assert_eq!(last_seq(&mut admin, "alice").await, 6);

    // Handles: set, clash (any case), malformed.
    let contact = admin
        .convs
        .set_contact_handle(handle(&peer, "Bobby"))
        .await
        .expect("set handle")
        .into_inner()
        .contact
        .expect("contact");
    assert_eq!(contact.handle, "Bobby");
    let err = admin
        .convs
        .set_contact_handle(handle(&other, "bOBBY"))
        .await
        .expect_err("taken");
    assert_eq!(err.code(), Code::AlreadyExists);
    for bad in [
        "",
        "root",
        "Root",
        "9lives",
        "_x",
        "has space",
        "ümlaut",
        &"h".repeat(31),
    ] {
        let err = admin
            .convs
            .set_contact_handle(handle(&other, bad))
            .await
            .expect_err("malformed");
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
        assert!(err.message().starts_with("handle:"), "{}", err.message());
    }
    admin
        .convs
        .set_contact_handle(handle(&other, &"h".repeat(30)))
        .await
        .expect("30 characters fit");
    assert_eq!(
        last_seq(&mut admin, "alice").await,
        7,
        "only the peer has a conversation"
    );

    // A named new contact gets its handle from the name; names are checked.
    let carol = some_account_id(3);
    let contact = admin
        .convs
        .set_contact_name(SetContactNameRequest {
            identity: "alice".into(),
            account_id: carol.clone(),
            name: "Carol Ann".into(),
        })
        .await
        .expect("name")
        .into_inner()
        .contact
        .expect("contact");
    assert_eq!(contact.handle, "Carol_Ann");
    let err = admin
        .convs
        .set_contact_name(SetContactNameRequest {
            identity: "alice".into(),
            account_id: carol.clone(),
            name: "n".repeat(101),
        })
        .await
        .expect_err("too long");
    assert_eq!(err.code(), Code::InvalidArgument);

    // Every contact has a distinct handle; the conversation shows its handle.
    let contacts = admin
        .convs
        .list_contacts(ListContactsRequest {
            identity: "alice".into(),
            ..Default::default()
        })
        .await
        .expect("contacts")
        .into_inner()
        .contacts;
    assert_eq!(contacts.len(), 3);
    let mut handles: Vec<String> = contacts.iter().map(|c| c.handle.to_lowercase()).collect();
    handles.sort();
    handles.dedup();
    assert_eq!(handles.len(), 3);
    assert!(contacts.iter().all(|c| !c.handle.is_empty()));
    let convs = admin
        .convs
        .list_conversations(ListConversationsRequest {
            identity: "alice".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .conversations;
    assert_eq!(convs.len(), 1);
    let conv = &convs[0];
    assert_eq!(conv.handle, "Bobby");
    assert!(conv.accepted && !conv.left);
    assert_eq!(
        (conv.read_seq, conv.last_seq, conv.outgoing_count),
        (2, 5, 2)
    );

    // History of the peer: its messages and its ConversationChanged events, in order.
    let h = history_of(&mut admin, "alice", &peer).await;
    assert_eq!(seqs(&h), [1, 2, 3, 4, 5, 6, 7]);
    let states: Vec<(bool, bool, u64, String)> = h
        .iter()
        .filter_map(changed)
        .map(|c| (c.accepted, c.left, c.read_seq, c.handle.clone()))
        .collect();
    assert_eq!(
        states,
        [
            (true, false, 0, "s01010101".to_owned()),
            (true, false, 2, "s01010101".to_owned()),
            (true, true, 2, "s01010101".to_owned()),
            (true, false, 2, "s01010101".to_owned()),
            (true, false, 2, "Bobby".to_owned()),
        ]
    );
    assert!(history_of(&mut admin, "alice", &other).await.is_empty());
    let err = admin
        .msgs
        .list_events(ListEventsRequest {
            identity: "alice".into(),
            peer: "bobby".into(),
            ..Default::default()
        })
        .await
        .expect_err("a handle is not an Account ID");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("peer:"), "{}", err.message());

    // Subscribers see the same events.
    let log_epoch = admin
        .ids
        .get_identity(GetIdentityRequest {
            name: "alice".into(),
        })
        .await
        .expect("get")
        .into_inner()
        .identity
        .expect("identity")
        .log_epoch;
    let mut stream = admin
        .msgs
        .subscribe(SubscribeRequest {
            identity: "alice".into(),
            from_seq: 5,
            log_epoch,
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    let mut got = Vec::new();
    while got.len() < 2 {
        let e = tokio::time::timeout(DEADLINE, stream.message())
            .await
            .expect("in time")
            .expect("stream")
            .expect("open");
        got.push(e.event.expect("an event"));
    }
    assert_eq!(seqs(&got), [6, 7]);
    assert_eq!(changed(&got[1]).expect("a change").handle, "Bobby");

    // Another identity's token reaches none of it.
    let tok_b = token(&mut admin, "bob").await;
    let mut b = clients(&channel, bearer(&tok_b));
    let denied = [
        b.convs.open_conversation(open(&peer)).await.map(|_| ()),
        b.convs.leave_conversation(leave(&peer)).await.map(|_| ()),
        b.convs
            .mark_conversation_read(read(&peer, 1))
            .await
            .map(|_| ()),
        b.convs
            .set_contact_handle(handle(&peer, "x"))
            .await
            .map(|_| ()),
    ];
    for r in denied {
        assert_eq!(r.expect_err("denied").code(), Code::PermissionDenied);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_survive_restarts_and_history_pages_by_peer() {
    let dir = TempDir::new("adapters-idem");
    let daemon = Daemon::start(dir.path());
    let channel = daemon.channel().await;
    let mut admin = clients(&channel, bearer(&daemon.admin_token));
    create(&mut admin, "alice").await;
    create(&mut admin, "bob").await;
    let (p1, p2) = (some_account_id(1), some_account_id(2));

    let first = send_keyed(&mut admin, "alice", &p1, "one", "txn-1")
        .await
        .expect("send");
    assert!(!first.duplicate);
    // The same key again, whatever the text or recipient: the first message, nothing queued.
    let again = send_keyed(&mut admin, "alice", &p2, "other text", "txn-1")
        .await
        .expect("repeat");
    assert!(again.duplicate);
    assert_eq!(
        (&again.message_id, again.seq, again.sent_at_ms),
        (&first.message_id, first.seq, first.sent_at_ms)
    );
    assert_eq!(last_seq(&mut admin, "alice").await, 1);
    // The request is still checked first.
    let err = send_keyed(&mut admin, "alice", "05abc", "x", "txn-1")
        .await
        .expect_err("bad recipient");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = send_keyed(&mut admin, "alice", &p1, "x", &"k".repeat(129))
        .await
        .expect_err("long key");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("idempotency_key:"),
        "{}",
        err.message()
    );
    let long = send_keyed(&mut admin, "alice", &p1, "x", &"k".repeat(128))
        .await
        .expect("128 characters");
    assert!(!long.duplicate);
    // Keys are per identity.
    let bobs = send_keyed(&mut admin, "bob", &p1, "one", "txn-1")
        .await
        .expect("bob");
    assert!(!bobs.duplicate);
    // Without a key every Send is new.
    for text in ["a", "a"] {
        let r = send_keyed(&mut admin, "alice", &p2, text, "")
            .await
            .expect("send");
        assert!(!r.duplicate);
    }

    // Keys are durable.
    let data_dir = daemon.data_dir.clone();
    assert!(daemon.terminate().success());
    let daemon = Daemon::start(&data_dir);
    let channel = daemon.channel().await;
    let mut admin = clients(&channel, bearer(&daemon.admin_token));
    let after = send_keyed(&mut admin, "alice", &p1, "one", "txn-1")
        .await
        .expect("after restart");
    assert!(after.duplicate);
    assert_eq!(after.message_id, first.message_id);

    // Alice's log: 1 p1, 2 p1, 3 p2, 4 p2. Page p1 and p2 both ways.
    let page = |peer: &str, after_seq, before_seq, page_size, newest_first| ListEventsRequest {
        identity: "alice".into(),
        after_seq,
        before_seq,
        page_size,
        newest_first,
        peer: peer.into(),
        ..Default::default()
    };
    let get = |r: ListEventsRequest| {
        let mut c = admin.msgs.clone();
        async move { c.list_events(r).await.expect("history").into_inner() }
    };
    let more = |h: &ListEventsResponse| !h.next_page_token.is_empty();
    let h = get(page(&p1, 0, 0, 0, false)).await;
    assert_eq!((seqs(&h.events), more(&h)), (vec![1, 2], false));
    let h = get(page(&p2, 0, 0, 1, true)).await;
    assert_eq!((seqs(&h.events), more(&h)), (vec![4], true));
    let h = get(page(&p2, 0, 4, 1, true)).await;
    assert_eq!((seqs(&h.events), more(&h)), (vec![3], false));
    let h = get(page(&p2, 3, 0, 10, false)).await;
    assert_eq!((seqs(&h.events), more(&h)), (vec![4], false));
    assert!(h.events.iter().all(|e| matches!(
        &e.kind,
        Some(event::Kind::Outgoing(m)) if m.recipient == p2
    )));
    // Upper case hex names the same peer.
    let h = get(page(&p1.to_uppercase(), 0, 0, 0, false)).await;
    assert_eq!(seqs(&h.events), [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_typing_checks_its_input_and_is_unavailable_offline() {
    let dir = TempDir::new("adapters-typing-offline");
    let daemon = Daemon::start(dir.path());
    let channel = daemon.channel().await;
    let mut admin = clients(&channel, bearer(&daemon.admin_token));
    create(&mut admin, "alice").await;
    create(&mut admin, "bob").await;
    let tok_b = token(&mut admin, "bob").await;
    let mut b = clients(&channel, bearer(&tok_b));
    let typing = |identity: &str, recipient: &str| SendTypingRequest {
        identity: identity.into(),
        recipient: recipient.into(),
        typing: true,
    };
    let peer = some_account_id(1);
    let err = admin
        .msgs
        .send_typing(typing("alice", &peer))
        .await
        .expect_err("offline");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let err = admin
        .msgs
        .send_typing(typing("alice", "05nothex"))
        .await
        .expect_err("bad recipient");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = admin
        .msgs
        .send_typing(typing("nobody", &peer))
        .await
        .expect_err("unknown identity");
    assert_eq!(err.code(), Code::NotFound);
    let err = b
        .msgs
        .send_typing(typing("alice", &peer))
        .await
        .expect_err("another identity");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(
        last_seq(&mut admin, "alice").await,
        0,
        "typing is never logged"
    );
}

// ------------------------------------------------------------------------------------------------
// Two daemons on a devnet
// ------------------------------------------------------------------------------------------------

impl Net {
    async fn daemon(&self, name: &str) -> Daemon {
        let dir = self.dir.path().join(name);
        let cmd = networked_command(&dir, &self.manifest, &self.config);
        tokio::task::spawn_blocking(move || Daemon::start_with(&dir, cmd))
            .await
            .expect("start daemon")
    }
}

/// Reads events until `done` says so; panics at the deadline.
async fn read_until(
    stream: &mut Streaming<SubscribeResponse>,
    seen: &mut Vec<Event>,
    mut done: impl FnMut(&[Event]) -> bool,
) {
    let until = Instant::now() + DEADLINE;
    while !done(seen) {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.message()).await {
            Ok(Ok(Some(r))) => seen.push(r.event.expect("an event")),
            Ok(other) => panic!("stream ended: {other:?}"),
            Err(_) => panic!("timed out; saw {seen:#?}"),
        }
    }
}

fn typing_of(events: &[Event]) -> Vec<(String, bool)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(event::Kind::Typing(t)) => Some((t.peer.clone(), t.typing)),
            _ => None,
        })
        .collect()
}

fn incoming_of(events: &[Event]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(event::Kind::Incoming(m)) => Some((
                m.sender.clone(),
                m.text.clone(),
                m.sender_profile_name.clone(),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_and_profile_names_cross_between_daemons() {
    let n = net("adapters-e2e", FAST_CONFIG).await;
    let a = n.daemon("a").await;
    let b = n.daemon("b").await;
    let mut ca = clients(&a.channel().await, bearer(&a.admin_token));
    let mut cb = clients(&b.channel().await, bearer(&b.admin_token));
    let alice = create(&mut ca, "alice").await;
    let bob = create(&mut cb, "bob").await;
    ca.ids
        .set_profile(SetProfileRequest {
            name: "alice".into(),
            display_name: "Alice Liddell".into(),
        })
        .await
        .expect("profile");

    let subscribe = |typing: bool| SubscribeRequest {
        identity: "bob".into(),
        from_seq: 0,
        typing,
        log_epoch: 0,
    };
    let mut with_typing = cb
        .msgs
        .subscribe(subscribe(true))
        .await
        .expect("subscribe")
        .into_inner();
    let mut without = cb
        .msgs
        .subscribe(subscribe(false))
        .await
        .expect("subscribe")
        .into_inner();

    // Started typing, a message, stopped typing.
    let typing = |on: bool| SendTypingRequest {
        identity: "alice".into(),
        recipient: bob.clone(),
        typing: on,
    };
    ca.msgs.send_typing(typing(true)).await.expect("typing on");
    let mut seen = Vec::new();
    read_until(&mut with_typing, &mut seen, |ev| !typing_of(ev).is_empty()).await;
    assert_eq!(typing_of(&seen), [(alice.clone(), true)]);
    let notice = seen.iter().find(|e| e.seq == 0).expect("a live notice");
    assert_eq!(notice.identity, "bob");
    assert!(notice.recorded_at_ms > 0);

    send_keyed(&mut ca, "alice", &bob, "hello bob", "")
        .await
        .expect("send");
    ca.msgs
        .send_typing(typing(false))
        .await
        .expect("typing off");
    read_until(&mut with_typing, &mut seen, |ev| {
        !incoming_of(ev).is_empty() && typing_of(ev).len() >= 2
    })
    .await;
    assert_eq!(
        typing_of(&seen),
        [(alice.clone(), true), (alice.clone(), false)]
    );
    assert_eq!(
        incoming_of(&seen),
        [(
            alice.clone(),
            "hello bob".to_owned(),
            "Alice Liddell".to_owned()
        )]
    );

    // The plain subscriber got the message and no typing; the log holds no typing either.
    let mut plain = Vec::new();
    read_until(&mut without, &mut plain, |ev| !incoming_of(ev).is_empty()).await;
    assert!(typing_of(&plain).is_empty());
    let log = history_of(&mut cb, "bob", "").await;
    assert!(log
        .iter()
        .all(|e| e.seq > 0 && typing_of(std::slice::from_ref(e)).is_empty()));
    assert_eq!(incoming_of(&log).len(), 1);

    // On bob's side alice is a message request whose handle comes from her profile name.
    let convs = cb
        .convs
        .list_conversations(ListConversationsRequest {
            identity: "bob".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .conversations;
    assert_eq!(convs.len(), 1);
    let conv = &convs[0];
    assert_eq!(conv.account_id, alice);
    assert_eq!(
        (conv.handle.as_str(), conv.display_name.as_str()),
        ("Alice_Liddell", "Alice Liddell")
    );
    assert!(!conv.accepted, "only received: a message request");
    let contacts = cb
        .convs
        .list_contacts(ListContactsRequest {
            identity: "bob".into(),
            ..Default::default()
        })
        .await
        .expect("contacts")
        .into_inner()
        .contacts;
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].profile_name, "Alice Liddell");
    assert_eq!(contacts[0].handle, "Alice_Liddell");

    // Bob writes back: the request is accepted, recorded right after his message.
    let reply = send_keyed(&mut cb, "bob", &alice, "hi alice", "")
        .await
        .expect("reply");
    let h = history_of(&mut cb, "bob", &alice).await;
    let after: Vec<&Event> = h.iter().filter(|e| e.seq > reply.seq).collect();
    let c = after
        .iter()
        .find_map(|e| changed(e))
        .expect("a ConversationChanged after the reply");
    assert!(c.accepted);
    assert_eq!(c.handle, "Alice_Liddell");

    a.terminate();
    b.terminate();
    n.devnet.shutdown().await;
}
