//! The gRPC API of a real `sessiond` process over TCP on 127.0.0.1 and its Unix socket:
//! identities, auth, bad input, Send + Subscribe (backlog, live, resume), ListEvents,
//! Conversations, Network, health; and the conventions: error details, paging, Get methods,
//! log-epoch cursors, stock clients' authorities on the socket, malformed and oversized bodies.

#[path = "support/daemon.rs"]
mod support;

use std::time::Duration;

use sessiond_api::v1::{
    event, ConversationKind, CreateIdentityRequest, CreateTokenRequest, DeleteIdentityRequest,
    DeliveryState, ExportRecoveryPasswordRequest, GetContactRequest, GetConversationRequest,
    GetIdentityRequest, GetNetworkStatusRequest, ListContactsRequest, ListConversationsRequest,
    ListEventsRequest, ListIdentitiesRequest, OpenConversationRequest, RebuildPathsRequest,
    RestoreIdentityRequest, SendMessageRequest, SetContactNameRequest, SubscribeRequest,
};
use support::{bearer, clients, some_account_id, Daemon, TempDir, Token};
use tonic::Code;

fn create(name: &str) -> CreateIdentityRequest {
    CreateIdentityRequest {
        name: name.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_lifecycle_auth_and_bad_input() {
    let dir = TempDir::new("api-ids");
    let daemon = Daemon::start(dir.path());
    let channel = daemon.channel().await;
    let mut admin = clients(&channel, bearer(&daemon.admin_token));

    // Create, list, export, restore under another name refused (same Account ID).
    let alice = admin
        .ids
        .create_identity(create("alice"))
        .await
        .expect("create")
        .into_inner();
    let alice_id = alice.identity.clone().expect("identity");
    assert_eq!(alice_id.name, "alice");
    assert!(alice_id.account_id.starts_with("05") && alice_id.account_id.len() == 66);
    assert_eq!(alice.recovery_password.split_whitespace().count(), 13);
    let exported = admin
        .ids
        .export_recovery_password(ExportRecoveryPasswordRequest {
            name: "alice".into(),
        })
        .await
        .expect("export")
        .into_inner();
    assert_eq!(exported.recovery_password, alice.recovery_password);
    let err = admin
        .ids
        .restore_identity(RestoreIdentityRequest {
            name: "alice2".into(),
            recovery_password: alice.recovery_password.clone(),
        })
        .await
        .expect_err("same account twice");
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let err = admin
        .ids
        .create_identity(create("alice"))
        .await
        .expect_err("name taken");
    assert_eq!(err.code(), Code::AlreadyExists);

    // Remove, then restore from the recovery password: same Account ID.
    let removed = admin
        .ids
        .delete_identity(DeleteIdentityRequest {
            name: "alice".into(),
        })
        .await
        .expect("remove")
        .into_inner();
    assert_eq!(removed.account_id, alice_id.account_id);
    let restored = admin
        .ids
        .restore_identity(RestoreIdentityRequest {
            name: "alice".into(),
            recovery_password: alice.recovery_password.to_uppercase(),
        })
        .await
        .expect("restore")
        .into_inner();
    assert_eq!(
        restored.identity.expect("identity").account_id,
        alice_id.account_id
    );
    admin
        .ids
        .create_identity(create("bob"))
        .await
        .expect("create bob");
    let list = admin
        .ids
        .list_identities(ListIdentitiesRequest::default())
        .await
        .expect("list")
        .into_inner();
    let names: Vec<_> = list.identities.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);

    // Bad input: each a clear INVALID_ARGUMENT / NOT_FOUND.
    for (name, code) in [("", Code::InvalidArgument), ("a b", Code::InvalidArgument)] {
        let err = admin
            .ids
            .create_identity(create(name))
            .await
            .expect_err("bad name");
        assert_eq!(err.code(), code, "{name:?}: {err:?}");
        assert!(err.message().starts_with("name:"), "{}", err.message());
    }
    let err = admin
        .ids
        .restore_identity(RestoreIdentityRequest {
            name: "carol".into(),
            recovery_password: "not a recovery password".into(),
        })
        .await
        .expect_err("bad password");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = admin
        .ids
        .delete_identity(DeleteIdentityRequest {
            name: "nobody".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("nobody"));

    // Auth: missing token, wrong token.
    let mut anon = clients(&channel, Token(None));
    let err = anon
        .ids
        .list_identities(ListIdentitiesRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("admin.token"), "{}", err.message());
    let mut wrong = clients(&channel, bearer(&"0".repeat(64)));
    let err = wrong
        .ids
        .list_identities(ListIdentitiesRequest::default())
        .await
        .expect_err("wrong");
    assert_eq!(err.code(), Code::Unauthenticated);

    // An identity-scoped token reaches its identity only.
    let token = admin
        .ids
        .create_token(CreateTokenRequest {
            name: "bob".into(),
            label: "test".into(),
        })
        .await
        .expect("token")
        .into_inner()
        .token;
    let mut bob = clients(&channel, bearer(&token));
    let list = bob
        .ids
        .list_identities(ListIdentitiesRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.identities.len(), 1);
    assert_eq!(list.identities[0].name, "bob");
    let history = |identity: &str| ListEventsRequest {
        identity: identity.into(),
        ..ListEventsRequest::default()
    };
    bob.msgs
        .list_events(history("bob"))
        .await
        .expect("own history");
    for other in ["alice", "nobody"] {
        let err = bob
            .msgs
            .list_events(history(other))
            .await
            .expect_err("other identity");
        assert_eq!(err.code(), Code::PermissionDenied, "{other}: {err:?}");
    }
    let err = bob
        .ids
        .create_identity(create("mallory"))
        .await
        .expect_err("admin only");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = bob
        .ids
        .export_recovery_password(ExportRecoveryPasswordRequest { name: "bob".into() })
        .await
        .expect_err("admin only");
    assert_eq!(err.code(), Code::PermissionDenied);
    // Removing bob revokes his token.
    admin
        .ids
        .delete_identity(DeleteIdentityRequest { name: "bob".into() })
        .await
        .expect("remove bob");
    let err = bob
        .ids
        .list_identities(ListIdentitiesRequest::default())
        .await
        .expect_err("revoked");
    assert_eq!(err.code(), Code::Unauthenticated);

    // An offline daemon (SESSIOND_OFFLINE=1 in the test support) has no network: UNAVAILABLE.
    let err = admin
        .net
        .get_network_status(GetNetworkStatusRequest {})
        .await
        .expect_err("no net");
    assert_eq!(err.code(), Code::Unavailable);
    let err = bob_rebuild(&mut anon).await;
    assert_eq!(err.code(), Code::Unauthenticated);

    // Standard health service answers without a token.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "sessiond.v1.MessageService".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    assert!(daemon.terminate().success(), "clean exit on SIGTERM");
}

async fn bob_rebuild(c: &mut support::Clients) -> tonic::Status {
    c.net
        .rebuild_paths(RebuildPathsRequest {})
        .await
        .expect_err("unauthenticated")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_subscribe_history_and_conversations() {
    let dir = TempDir::new("api-msgs");
    let daemon = Daemon::start(dir.path());
    let channel = daemon.channel().await;
    let mut admin = clients(&channel, bearer(&daemon.admin_token));
    admin
        .ids
        .create_identity(create("alice"))
        .await
        .expect("alice");
    let bob_id = admin
        .ids
        .create_identity(create("bob"))
        .await
        .expect("bob")
        .into_inner()
        .identity
        .expect("identity")
        .account_id;

    let send = |text: &str| SendMessageRequest {
        identity: "alice".into(),
        recipient: bob_id.clone(),
        text: text.into(),
        ..Default::default()
    };
    // Bad sends write nothing.
    for (req, code) in [
        (
            SendMessageRequest {
                recipient: "05abc".into(),
                ..send("x")
            },
            Code::InvalidArgument,
        ),
        // A group is a conversation too, but alice is in no group.
        (
            SendMessageRequest {
                recipient: format!("03{}", "11".repeat(32)),
                ..send("x")
            },
            Code::NotFound,
        ),
        (
            SendMessageRequest {
                recipient: format!("25{}", "11".repeat(32)),
                ..send("x")
            },
            Code::InvalidArgument,
        ),
        (send(""), Code::InvalidArgument),
        (send(&"x".repeat(2001)), Code::InvalidArgument),
        (
            SendMessageRequest {
                identity: "nobody".into(),
                ..send("x")
            },
            Code::NotFound,
        ),
        (
            SendMessageRequest {
                identity: "".into(),
                ..send("x")
            },
            Code::InvalidArgument,
        ),
    ] {
        let err = admin.msgs.send_message(req).await.expect_err("bad send");
        assert_eq!(err.code(), code, "{err:?}");
    }

    // Two messages before anyone subscribes: the backlog.
    let r1 = admin
        .msgs
        .send_message(send("one"))
        .await
        .expect("send")
        .into_inner();
    assert_eq!((r1.seq, r1.state), (1, DeliveryState::Queued as i32));
    assert_eq!(r1.message_id.len(), 32);
    admin
        .msgs
        .send_message(send(&"é".repeat(2000)))
        .await
        .expect("send at the limit");

    let mut stream = admin
        .msgs
        .subscribe(SubscribeRequest {
            identity: "alice".into(),
            from_seq: 0,
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    let r1_streamed = next_response(&mut stream).await;
    let epoch = r1_streamed.log_epoch;
    assert_ne!(epoch, 0);
    let e1 = r1_streamed.event.expect("an event");
    assert_eq!(e1.seq, 1);
    match e1.kind {
        Some(event::Kind::Outgoing(m)) => {
            assert_eq!(m.text, "one");
            assert_eq!(m.recipient, bob_id);
            assert_eq!(m.message_id, r1.message_id);
        }
        other => panic!("expected outgoing, got {other:?}"),
    }
    assert_eq!(next_event(&mut stream).await.seq, 2);
    // Live.
    admin.msgs.send_message(send("three")).await.expect("send");
    let e3 = next_event(&mut stream).await;
    assert_eq!(e3.seq, 3);
    assert_eq!(e3.identity, "alice");
    drop(stream);

    // Resume from the last seq seen: exactly what was missed.
    admin.msgs.send_message(send("four")).await.expect("send");
    admin.msgs.send_message(send("five")).await.expect("send");
    let mut resumed = admin
        .msgs
        .subscribe(SubscribeRequest {
            identity: "alice".into(),
            from_seq: 3,
            log_epoch: epoch,
            ..Default::default()
        })
        .await
        .expect("resubscribe")
        .into_inner();
    let seqs = [
        next_event(&mut resumed).await.seq,
        next_event(&mut resumed).await.seq,
    ];
    assert_eq!(seqs, [4, 5]);
    // Bob's log is separate and empty.
    let bob_history = admin
        .msgs
        .list_events(ListEventsRequest {
            identity: "bob".into(),
            ..ListEventsRequest::default()
        })
        .await
        .expect("history")
        .into_inner();
    assert!(bob_history.events.is_empty());

    // History pages.
    let page = admin
        .msgs
        .list_events(ListEventsRequest {
            identity: "alice".into(),
            page_size: 2,
            newest_first: true,
            ..ListEventsRequest::default()
        })
        .await
        .expect("history")
        .into_inner();
    assert_eq!(
        page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [5, 4]
    );
    assert!(!page.next_page_token.is_empty());

    // Conversations and contacts.
    let convs = admin
        .convs
        .list_conversations(ListConversationsRequest {
            identity: "alice".into(),
            ..Default::default()
        })
        .await
        .expect("convs")
        .into_inner()
        .conversations;
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0].account_id, bob_id);
    assert_eq!(convs[0].outgoing_count, 5);
    admin
        .convs
        .set_contact_name(SetContactNameRequest {
            identity: "alice".into(),
            account_id: bob_id.clone(),
            name: "Bob".into(),
        })
        .await
        .expect("name");
    let err = admin
        .convs
        .set_contact_name(SetContactNameRequest {
            identity: "alice".into(),
            account_id: some_account_id(7)[..60].to_owned(),
            name: "x".into(),
        })
        .await
        .expect_err("bad id");
    assert_eq!(err.code(), Code::InvalidArgument);
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
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].name, "Bob");
    let convs = admin
        .convs
        .list_conversations(ListConversationsRequest {
            identity: "alice".into(),
            ..Default::default()
        })
        .await
        .expect("convs")
        .into_inner()
        .conversations;
    assert_eq!(convs[0].display_name, "Bob");

    // The queued messages and the log survive a restart.
    let data_dir = daemon.data_dir.clone();
    assert!(daemon.terminate().success());
    let daemon = Daemon::start(&data_dir);
    let channel = daemon.channel().await;
    let mut admin = clients(&channel, bearer(&daemon.admin_token));
    let all = admin
        .msgs
        .list_events(ListEventsRequest {
            identity: "alice".into(),
            ..ListEventsRequest::default()
        })
        .await
        .expect("history")
        .into_inner();
    // Five messages, then the ConversationChanged that naming Bob recorded.
    assert_eq!(all.events.len(), 6);
    assert!(matches!(
        &all.events[5].kind,
        Some(event::Kind::Conversation(c))
            if c.conversation.as_ref().is_some_and(|c| c.display_name == "Bob")
    ));
    assert!(all.next_page_token.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_of_a_removed_identity_gets_not_found() {
    let dir = TempDir::new("api-removed");
    let daemon = Daemon::start(dir.path());
    let channel = daemon.channel().await;
    let mut admin = clients(&channel, bearer(&daemon.admin_token));
    admin
        .ids
        .create_identity(create("gone"))
        .await
        .expect("create");
    let mut stream = admin
        .msgs
        .subscribe(SubscribeRequest {
            identity: "gone".into(),
            from_seq: 0,
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    admin
        .ids
        .delete_identity(DeleteIdentityRequest {
            name: "gone".into(),
        })
        .await
        .expect("remove");
    let err = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("stream ends")
        .expect_err("an error status");
    assert_eq!(err.code(), Code::NotFound);
}

async fn next_response(
    s: &mut tonic::Streaming<sessiond_api::v1::SubscribeResponse>,
) -> sessiond_api::v1::SubscribeResponse {
    tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("an event within 10 s")
        .expect("stream ok")
        .expect("stream open")
}

async fn next_event(
    s: &mut tonic::Streaming<sessiond_api::v1::SubscribeResponse>,
) -> sessiond_api::v1::Event {
    next_response(s).await.event.expect("an event")
}

// ------------------------------------------------------------------------------------------
// Conventions: error details, paging, Get methods, cursors with a log epoch, the Unix socket
// as stock clients call it, malformed and oversized request bodies.
// ------------------------------------------------------------------------------------------

/// The ErrorInfo of a status (panics without one), checked to be in sessiond's domain.
fn error_info(s: &tonic::Status) -> tonic_types::ErrorInfo {
    use tonic_types::StatusExt;
    let info = s
        .get_error_details()
        .error_info()
        .cloned()
        .unwrap_or_else(|| panic!("no ErrorInfo in {s:?}"));
    assert_eq!(info.domain, "sessiond.v1");
    info
}

/// The fields a status's BadRequest names.
fn bad_fields(s: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    s.get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_error_info_and_field_violations() {
    let dir = TempDir::new("api-details");
    let daemon = Daemon::start(dir.path());
    let channel = daemon.channel().await;
    let mut admin = clients(&channel, bearer(&daemon.admin_token));
    admin
        .ids
        .create_identity(create("alice"))
        .await
        .expect("create");
    admin
        .ids
        .create_identity(create("bob"))
        .await
        .expect("create");

    // A bad field: INVALID_ARGUMENT, reason INVALID_INPUT, the field in BadRequest and metadata.
    let err = admin
        .ids
        .create_identity(create("bad name"))
        .await
        .expect_err("bad");
    assert_eq!(err.code(), Code::InvalidArgument);
    let info = error_info(&err);
    assert_eq!(info.reason, "INVALID_INPUT");
    assert_eq!(info.metadata.get("field").map(String::as_str), Some("name"));
    assert_eq!(bad_fields(&err), ["name"]);
    // A bad Account ID (a protocol parse error) names its field too.
    let err = admin
        .msgs
        .send_message(SendMessageRequest {
            identity: "alice".into(),
            recipient: "05abc".into(),
            text: "hi".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad recipient");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&err), ["recipient"]);
    // Taken, unknown, unauthenticated, denied: one stable reason each, no BadRequest.
    let err = admin
        .ids
        .create_identity(create("alice"))
        .await
        .expect_err("taken");
    assert_eq!(error_info(&err).reason, "ALREADY_EXISTS");
    assert!(bad_fields(&err).is_empty());
    let err = admin
        .ids
        .get_identity(GetIdentityRequest {
            name: "nobody".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(error_info(&err).reason, "NOT_FOUND");
    let mut anon = clients(&channel, Token(None));
    let err = anon
        .ids
        .list_identities(ListIdentitiesRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(error_info(&err).reason, "UNAUTHENTICATED");
    let scoped = admin
        .ids
        .create_token(CreateTokenRequest {
            name: "alice".into(),
            label: String::new(),
        })
        .await
        .expect("token")
        .into_inner()
        .token;
    let mut alice = clients(&channel, bearer(&scoped));
    let err = alice
        .ids
        .get_identity(GetIdentityRequest { name: "bob".into() })
        .await
        .expect_err("another identity");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(error_info(&err).reason, "PERMISSION_DENIED");
    // The scheme word is case-insensitive.
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let value: tonic::metadata::AsciiMetadataValue = format!("{scheme} {}", daemon.admin_token)
            .parse()
            .expect("ascii");
        let mut c = clients(&channel, Token(Some(value)));
        c.ids
            .list_identities(ListIdentitiesRequest::default())
            .await
            .unwrap_or_else(|e| panic!("{scheme}: {e:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_and_get_methods_find_one() {
    let dir = TempDir::new("api-pages");
    let daemon = Daemon::start(dir.path());
    let channel = daemon.channel().await;
    let mut admin = clients(&channel, bearer(&daemon.admin_token));
    for name in ["a1", "a2", "a3", "a4", "a5"] {
        admin
            .ids
            .create_identity(create(name))
            .await
            .expect("create");
    }
    // Identities two at a time: 2 + 2 + 1, the last page without a token.
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = admin
            .ids
            .list_identities(ListIdentitiesRequest {
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        assert!(page.identities.len() <= 2);
        names.extend(page.identities.into_iter().map(|i| i.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["a1", "a2", "a3", "a4", "a5"]);
    // page_size above the maximum is coerced; negative is refused; so is a foreign token.
    let all = admin
        .ids
        .list_identities(ListIdentitiesRequest {
            page_size: i32::MAX,
            ..Default::default()
        })
        .await
        .expect("coerced")
        .into_inner();
    assert_eq!(all.identities.len(), 5);
    assert!(all.next_page_token.is_empty());
    let err = admin
        .ids
        .list_identities(ListIdentitiesRequest {
            page_size: -1,
            ..Default::default()
        })
        .await
        .expect_err("negative");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&err), ["page_size"]);
    for bad in [
        "garbage!",
        "c2Vzc2lvbmQxfGNvbnRhY3RzfGF8Yg",
        &"A".repeat(5000),
    ] {
        let err = admin
            .ids
            .list_identities(ListIdentitiesRequest {
                page_size: 1,
                page_token: bad.to_owned(),
            })
            .await
            .expect_err("bad token");
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(bad_fields(&err), ["page_token"]);
    }

    // Contacts and conversations page the same way, and a token is bound to its identity.
    for n in 1..=3 {
        admin
            .convs
            .set_contact_name(SetContactNameRequest {
                identity: "a1".into(),
                account_id: some_account_id(n),
                name: format!("c{n}"),
            })
            .await
            .expect("contact");
        admin
            .convs
            .open_conversation(OpenConversationRequest {
                identity: "a1".into(),
                account_id: some_account_id(n),
            })
            .await
            .expect("open");
    }
    let first = admin
        .convs
        .list_contacts(ListContactsRequest {
            identity: "a1".into(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .expect("contacts")
        .into_inner();
    assert_eq!(first.contacts.len(), 2);
    let second = admin
        .convs
        .list_contacts(ListContactsRequest {
            identity: "a1".into(),
            page_size: 2,
            page_token: first.next_page_token.clone(),
        })
        .await
        .expect("contacts")
        .into_inner();
    assert_eq!(second.contacts.len(), 1);
    assert!(second.next_page_token.is_empty());
    let err = admin
        .convs
        .list_contacts(ListContactsRequest {
            identity: "a2".into(),
            page_size: 2,
            page_token: first.next_page_token,
        })
        .await
        .expect_err("a token of another identity");
    assert_eq!(bad_fields(&err), ["page_token"]);
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = admin
            .convs
            .list_conversations(ListConversationsRequest {
                identity: "a1".into(),
                page_size: 1,
                page_token: token,
            })
            .await
            .expect("conversations")
            .into_inner();
        seen.extend(page.conversations.into_iter().map(|c| c.account_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    seen.sort();
    assert_eq!(seen, (1..=3).map(some_account_id).collect::<Vec<_>>());

    // Get methods: found, and NOT_FOUND with a reason.
    let got = admin
        .ids
        .get_identity(GetIdentityRequest { name: "a3".into() })
        .await
        .expect("get")
        .into_inner()
        .identity
        .expect("identity");
    assert_eq!(got.name, "a3");
    assert_ne!(got.log_epoch, 0);
    let c = admin
        .convs
        .get_contact(GetContactRequest {
            identity: "a1".into(),
            account_id: some_account_id(2),
        })
        .await
        .expect("contact")
        .into_inner()
        .contact
        .expect("contact");
    assert_eq!(c.name, "c2");
    let conv = admin
        .convs
        .get_conversation(GetConversationRequest {
            identity: "a1".into(),
            account_id: some_account_id(3),
        })
        .await
        .expect("conversation")
        .into_inner()
        .conversation
        .expect("conversation");
    assert!(conv.accepted);
    // Every conversation names itself by its address and kind.
    assert_eq!(conv.conversation_id, some_account_id(3));
    assert_eq!(conv.account_id, conv.conversation_id);
    assert_eq!(conv.kind, ConversationKind::Direct as i32);
    // Any conversation address is accepted where a conversation is named; a malformed one is
    // INVALID_ARGUMENT, an unknown group NOT_FOUND.
    let group = format!("03{}", &some_account_id(4)[2..]);
    let err = admin
        .convs
        .get_conversation(GetConversationRequest {
            identity: "a1".into(),
            account_id: "03zz".into(),
        })
        .await
        .expect_err("malformed");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(bad_fields(&err), vec!["account_id".to_owned()]);
    let err = admin
        .convs
        .get_conversation(GetConversationRequest {
            identity: "a1".into(),
            account_id: group.to_uppercase(),
        })
        .await
        .expect_err("no such group");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = admin
        .msgs
        .list_events(ListEventsRequest {
            identity: "a1".into(),
            peer: "http://127.0.0.1:8080".into(),
            ..Default::default()
        })
        .await
        .expect_err("a room needs its token");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let events = admin
        .msgs
        .list_events(ListEventsRequest {
            identity: "a1".into(),
            peer: "http://127.0.0.1:8080/lobby".into(),
            ..Default::default()
        })
        .await
        .expect("an empty room history")
        .into_inner();
    assert!(events.events.is_empty());
    for err in [
        admin
            .convs
            .get_contact(GetContactRequest {
                identity: "a1".into(),
                account_id: some_account_id(9),
            })
            .await
            .expect_err("no such contact"),
        admin
            .convs
            .get_conversation(GetConversationRequest {
                identity: "a2".into(),
                account_id: some_account_id(1),
            })
            .await
            .expect_err("no such conversation"),
    ] {
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
        assert_eq!(error_info(&err).reason, "NOT_FOUND");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_of_a_replaced_log_are_refused_not_skipped() {
    let dir = TempDir::new("api-epoch");
    let daemon = Daemon::start(dir.path());
    let channel = daemon.channel().await;
    let mut admin = clients(&channel, bearer(&daemon.admin_token));
    let old = admin
        .ids
        .create_identity(create("eve"))
        .await
        .expect("create")
        .into_inner()
        .identity
        .expect("identity");
    let send = |text: &str| SendMessageRequest {
        identity: "eve".into(),
        recipient: some_account_id(1),
        text: text.into(),
        ..Default::default()
    };
    for i in 0..3 {
        admin
            .msgs
            .send_message(send(&format!("m{i}")))
            .await
            .expect("send");
    }
    // A page token of the old log.
    let page = admin
        .msgs
        .list_events(ListEventsRequest {
            identity: "eve".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("page")
        .into_inner();
    assert_eq!(page.log_epoch, old.log_epoch);
    assert_eq!(page.events.len(), 1);
    let old_token = page.next_page_token;
    assert!(!old_token.is_empty());
    let next = admin
        .msgs
        .list_events(ListEventsRequest {
            identity: "eve".into(),
            page_size: 1,
            page_token: old_token.clone(),
            ..Default::default()
        })
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(seqs_of(&next.events), [2]);
    // The same token with other filters is refused.
    let err = admin
        .msgs
        .list_events(ListEventsRequest {
            identity: "eve".into(),
            page_size: 1,
            page_token: old_token.clone(),
            newest_first: true,
            ..Default::default()
        })
        .await
        .expect_err("other filters");
    assert_eq!(bad_fields(&err), ["page_token"]);

    // Delete eve and add her again: same name, new log (seq 1 again), new epoch.
    admin
        .ids
        .delete_identity(DeleteIdentityRequest { name: "eve".into() })
        .await
        .expect("delete");
    let new = admin
        .ids
        .create_identity(create("eve"))
        .await
        .expect("create again")
        .into_inner()
        .identity
        .expect("identity");
    assert_ne!(new.log_epoch, old.log_epoch);
    for i in 0..4 {
        admin
            .msgs
            .send_message(send(&format!("n{i}")))
            .await
            .expect("send");
    }

    // Resuming the old cursor: FAILED_PRECONDITION, LOG_EPOCH_MISMATCH, the new epoch given.
    let err = admin
        .msgs
        .subscribe(SubscribeRequest {
            identity: "eve".into(),
            from_seq: 2,
            log_epoch: old.log_epoch,
            ..Default::default()
        })
        .await
        .expect_err("an old cursor");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let info = error_info(&err);
    assert_eq!(info.reason, "LOG_EPOCH_MISMATCH");
    assert_eq!(
        info.metadata.get("log_epoch"),
        Some(&new.log_epoch.to_string())
    );
    // The old page token: the same.
    let err = admin
        .msgs
        .list_events(ListEventsRequest {
            identity: "eve".into(),
            page_size: 1,
            page_token: old_token,
            ..Default::default()
        })
        .await
        .expect_err("an old page token");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(error_info(&err).reason, "LOG_EPOCH_MISMATCH");
    // A seq without its epoch is refused, naming log_epoch.
    let err = admin
        .msgs
        .subscribe(SubscribeRequest {
            identity: "eve".into(),
            from_seq: 2,
            ..Default::default()
        })
        .await
        .expect_err("no epoch");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&err), ["log_epoch"]);
    // A seq past the end of the right log: OUT_OF_RANGE with the last seq.
    let err = admin
        .msgs
        .subscribe(SubscribeRequest {
            identity: "eve".into(),
            from_seq: 99,
            log_epoch: new.log_epoch,
            ..Default::default()
        })
        .await
        .expect_err("past the end");
    assert_eq!(err.code(), Code::OutOfRange);
    let info = error_info(&err);
    assert_eq!(info.reason, "SEQ_OUT_OF_RANGE");
    assert_eq!(info.metadata.get("last_seq").map(String::as_str), Some("4"));
    // The right cursor resumes exactly after it, every event carrying the epoch.
    let mut stream = admin
        .msgs
        .subscribe(SubscribeRequest {
            identity: "eve".into(),
            from_seq: 2,
            log_epoch: new.log_epoch,
            ..Default::default()
        })
        .await
        .expect("resume")
        .into_inner();
    let r = next_response(&mut stream).await;
    assert_eq!(
        (r.log_epoch, r.event.expect("event").seq),
        (new.log_epoch, 3)
    );
}

fn seqs_of(events: &[sessiond_api::v1::Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

/// A gRPC call written by hand over HTTP/2 on the daemon's Unix socket, with any `:authority`
/// and any request bytes: what stock clients (grpcio, grpcurl) send, which tonic's own client
/// cannot.
mod raw_h2 {
    use std::collections::HashMap;
    use std::path::Path;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixStream;

    /// What came back on one stream.
    #[derive(Debug, Default)]
    pub struct Reply {
        /// Response headers and trailers, merged.
        pub headers: HashMap<String, String>,
        /// The DATA bytes.
        pub data: Vec<u8>,
        /// Set if the server reset the stream, with the error code.
        pub reset: Option<u32>,
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend(stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// One connection; calls run one after the other on streams 1, 3, 5, … so the HPACK
    /// dynamic tables of both sides are exercised across calls.
    pub struct Conn {
        sock: UnixStream,
        encoder: loona_hpack::Encoder<'static>,
        decoder: loona_hpack::Decoder<'static>,
        next_stream: u32,
    }

    impl Conn {
        pub async fn open(path: &Path) -> Conn {
            let mut sock = UnixStream::connect(path).await.expect("connect");
            sock.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                .await
                .expect("preface");
            sock.write_all(&frame(0x4, 0, 0, &[]))
                .await
                .expect("settings");
            Conn {
                sock,
                encoder: loona_hpack::Encoder::new(),
                decoder: loona_hpack::Decoder::new(),
                next_stream: 1,
            }
        }

        /// Calls `method` (e.g. `/sessiond.v1.IdentityService/WhoAmI`) with `body` (the
        /// whole gRPC-framed request) and reads until the stream ends.
        pub async fn call(
            &mut self,
            authority: &str,
            method: &str,
            token: &str,
            body: &[u8],
        ) -> Reply {
            let stream = self.next_stream;
            self.next_stream += 2;
            let auth = format!("Bearer {token}");
            let headers: Vec<(&[u8], &[u8])> = vec![
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":path", method.as_bytes()),
                (b":authority", authority.as_bytes()),
                (b"content-type", b"application/grpc"),
                (b"te", b"trailers"),
                (b"authorization", auth.as_bytes()),
            ];
            let block = self.encoder.encode(headers);
            let mut out = frame(0x1, 0x4, stream, &block);
            out.extend(frame(0x0, 0x1, stream, body));
            self.sock.write_all(&out).await.expect("request");
            let mut reply = Reply::default();
            loop {
                let mut head = [0u8; 9];
                self.sock.read_exact(&mut head).await.expect("a frame");
                let len =
                    usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
                let mut payload = vec![0u8; len];
                self.sock.read_exact(&mut payload).await.expect("a payload");
                let (kind, flags) = (head[3], head[4]);
                let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                match kind {
                    0x4 if flags & 0x1 == 0 => {
                        self.sock
                            .write_all(&frame(0x4, 0x1, 0, &[]))
                            .await
                            .expect("ack");
                    }
                    0x1 => {
                        for (n, v) in self.decoder.decode(&payload).expect("hpack") {
                            reply.headers.insert(
                                String::from_utf8_lossy(&n).into_owned(),
                                String::from_utf8_lossy(&v).into_owned(),
                            );
                        }
                        if id == stream && flags & 0x1 != 0 {
                            return reply;
                        }
                    }
                    0x0 if id == stream => {
                        reply.data.extend(&payload);
                        if flags & 0x1 != 0 {
                            return reply;
                        }
                    }
                    0x3 if id == stream => {
                        reply.reset = Some(u32::from_be_bytes(payload[..4].try_into().expect("4")));
                        return reply;
                    }
                    0x7 => panic!("GOAWAY: {payload:?}"),
                    _ => {}
                }
            }
        }
    }

    /// A gRPC length-prefixed message.
    pub fn grpc_frame(message: &[u8]) -> Vec<u8> {
        let mut f = vec![0];
        f.extend((message.len() as u32).to_be_bytes());
        f.extend_from_slice(message);
        f
    }
}

/// The details of a raw reply's `grpc-status-details-bin`.
fn raw_status(reply: &raw_h2::Reply) -> tonic::Status {
    let mut headers = http::HeaderMap::new();
    for (k, v) in &reply.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            headers.insert(name, value);
        }
    }
    tonic::Status::from_header_map(&headers).unwrap_or_else(|| panic!("no status in {reply:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unix_socket_takes_stock_clients_authorities_and_bad_bodies_get_conventional_codes() {
    let dir = TempDir::new("api-unix");
    let daemon = Daemon::start(dir.path());
    let sock = dir.path().join("sessiond.sock");
    let token = daemon.admin_token.clone();
    let who = "/sessiond.v1.IdentityService/WhoAmI";
    let mut conn = raw_h2::Conn::open(&sock).await;
    // What grpcurl/grpc-go and grpc-java send (the path), what grpcio sends (percent-encoded),
    // and a plain one; twice each on one connection, so the second time they come from the
    // HPACK dynamic table.
    let path = sock.to_string_lossy().into_owned();
    let encoded = path.replace('/', "%2F");
    for authority in [
        path.as_str(),
        encoded.as_str(),
        "localhost",
        path.as_str(),
        encoded.as_str(),
    ] {
        let reply = conn
            .call(authority, who, &token, &raw_h2::grpc_frame(&[]))
            .await;
        assert_eq!(reply.reset, None, "{authority}: the stream was reset");
        assert_eq!(
            reply.headers.get(":status").map(String::as_str),
            Some("200")
        );
        assert_eq!(
            reply.headers.get("grpc-status").map(String::as_str),
            Some("0"),
            "{reply:?}"
        );
        // WhoAmIResponse { admin: true }.
        assert_eq!(reply.data, raw_h2::grpc_frame(&[0x08, 0x01]));
    }

    // A body that is not protobuf, and a string that is not UTF-8: INVALID_ARGUMENT.
    let create = "/sessiond.v1.IdentityService/CreateIdentity";
    for body in [
        &[0x0a, 0x20, b'a'][..],
        &[0x0a, 0x02, 0xff, 0xfe][..],
        &[0xff; 8][..],
    ] {
        let reply = conn
            .call(&path, create, &token, &raw_h2::grpc_frame(body))
            .await;
        let s = raw_status(&reply);
        assert_eq!(s.code(), Code::InvalidArgument, "{body:?}: {s:?}");
        assert_eq!(error_info(&s).reason, "MALFORMED_MESSAGE");
    }
    // A message over the limit: RESOURCE_EXHAUSTED (the length prefix alone says so).
    let mut big = vec![0];
    big.extend((5u32 * 1024 * 1024).to_be_bytes());
    big.extend([0x0a, 0x01, b'a']);
    let reply = conn.call(&path, create, &token, &big).await;
    let s = raw_status(&reply);
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    let info = error_info(&s);
    assert_eq!(info.reason, "MESSAGE_TOO_LARGE");
    assert_eq!(
        info.metadata.get("limit_bytes").map(String::as_str),
        Some("4194304")
    );
    // The connection is still good after all that.
    let reply = conn
        .call(&path, who, &token, &raw_h2::grpc_frame(&[]))
        .await;
    assert_eq!(
        reply.headers.get("grpc-status").map(String::as_str),
        Some("0")
    );
}

/// Stock Python grpcio on the Unix socket, with no authority option: the test runs where
/// `python3` (or `SESSIOND_TEST_PYTHON`) can `import grpc`, and says so and passes where it
/// cannot (the raw HTTP/2 test above checks the same path authority without Python).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_calls_the_unix_socket() {
    let python = std::env::var("SESSIOND_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let probe = std::process::Command::new(&python)
        .args(["-c", "import grpc"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(_) => {
            eprintln!("SKIPPED: {python} has no grpcio (pip install grpcio to run this test)");
            return;
        }
        Err(e) => {
            eprintln!("SKIPPED: no {python} ({e}); set SESSIOND_TEST_PYTHON to run this test");
            return;
        }
    }
    let dir = TempDir::new("api-grpcio");
    let daemon = Daemon::start(dir.path());
    let sock = dir.path().join("sessiond.sock");
    let script = r#"
import sys, grpc
path, token = sys.argv[1], sys.argv[2]
with grpc.insecure_channel("unix:" + path) as ch:
    who = ch.unary_unary("/sessiond.v1.IdentityService/WhoAmI")
    out = who(b"", metadata=[("authorization", "Bearer " + token)], timeout=20)
    sys.stdout.write(out.hex())
"#;
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .arg("-c")
            .arg(script)
            .arg(&sock)
            .arg(&daemon.admin_token)
            .output()
            .expect("run python")
    })
    .await
    .expect("python task");
    assert!(
        out.status.success(),
        "grpcio failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // WhoAmIResponse { admin: true }.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0801");
}

/// A strict reader of the text exposition format (OpenMetrics 1.0 text, which Prometheus reads):
/// every line is a `# HELP`/`# TYPE`/`# UNIT` comment, a sample of a declared family, or the
/// final `# EOF`; label values are quoted with escapes; values are floats. Panics on anything
/// else.
mod prom {
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    pub struct Sample {
        pub name: String,
        pub labels: Vec<(String, String)>,
        pub value: f64,
    }

    fn valid_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    fn labels(text: &str, line: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (name, after) = rest
                .split_once("=\"")
                .unwrap_or_else(|| panic!("bad label in {line:?}"));
            assert!(valid_name(name), "bad label name {name:?} in {line:?}");
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c @ ('\\' | '"'))) => value.push(c),
                        other => panic!("bad escape {other:?} in {line:?}"),
                    },
                    Some((_, c)) => value.push(c),
                    None => panic!("unterminated label value in {line:?}"),
                }
            };
            out.push((name.to_owned(), value));
            rest = &after[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
        out
    }

    fn value(s: &str, line: &str) -> f64 {
        match s {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            _ => s
                .parse()
                .unwrap_or_else(|_| panic!("bad value {s:?} in {line:?}")),
        }
    }

    /// The samples of `text`, checked against the declared families.
    pub fn parse(text: &str) -> Vec<Sample> {
        let mut types: HashMap<String, String> = HashMap::new();
        let mut samples = Vec::new();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"# EOF"), "no final # EOF");
        for line in &lines[..lines.len() - 1] {
            if let Some(comment) = line.strip_prefix("# ") {
                let mut parts = comment.splitn(3, ' ');
                let (kind, name) = (parts.next(), parts.next());
                let name = name.unwrap_or_else(|| panic!("bad comment {line:?}"));
                assert!(valid_name(name), "bad family name in {line:?}");
                match kind {
                    Some("TYPE") => {
                        let t = parts.next().unwrap_or_default();
                        assert!(
                            [
                                "counter",
                                "gauge",
                                "histogram",
                                "summary",
                                "unknown",
                                "info"
                            ]
                            .contains(&t),
                            "bad type in {line:?}"
                        );
                        types.insert(name.to_owned(), t.to_owned());
                    }
                    Some("HELP") | Some("UNIT") => {}
                    _ => panic!("unexpected comment {line:?}"),
                }
                continue;
            }
            assert!(!line.is_empty(), "empty line in the exposition");
            let (head, val) = match line.find('{') {
                Some(open) => {
                    let close = line
                        .rfind('}')
                        .unwrap_or_else(|| panic!("no }} in {line:?}"));
                    let name = &line[..open];
                    let ls = labels(&line[open + 1..close], line);
                    ((name.to_owned(), ls), line[close + 1..].trim())
                }
                None => {
                    let (name, v) = line
                        .split_once(' ')
                        .unwrap_or_else(|| panic!("no value in {line:?}"));
                    ((name.to_owned(), Vec::new()), v.trim())
                }
            };
            let (name, labels) = head;
            assert!(valid_name(&name), "bad metric name in {line:?}");
            let family = ["_total", "_bucket", "_count", "_sum", "_created", ""]
                .iter()
                .filter_map(|suffix| name.strip_suffix(suffix))
                .find(|base| types.contains_key(*base))
                .unwrap_or_else(|| panic!("sample of an undeclared family: {line:?}"));
            if types[family] == "counter" {
                assert!(
                    name.ends_with("_total") || name.ends_with("_created"),
                    "{line:?}"
                );
            }
            let v = val.split(' ').next().unwrap_or_default();
            samples.push(Sample {
                name,
                labels,
                value: value(v, line),
            });
        }
        samples
    }

    /// The sum of the samples named `name` whose labels include `with`.
    pub fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
        samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                with.iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value)
            .sum()
    }
}

/// The samples of a daemon's /metrics.
async fn scrape(http: &str) -> Vec<prom::Sample> {
    let r = support::http_request(http, "GET", "/metrics", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/openmetrics-text")));
    prom::parse(&r.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_before_and_after_bootstrap_and_metrics_as_messages_flow() {
    // Before: seeds that do not answer: not bootstrapped, no path, and the reasons say so.
    let dir = TempDir::new("api-health");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let dead_seed = format!("https://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let mut cmd = support::run_command(dir.path());
    cmd.env_remove("SESSIOND_OFFLINE")
        .args(["--seeds", &dead_seed]);
    let lonely = Daemon::start_with(dir.path(), cmd);
    let http = lonely.http.clone().expect("http");
    let r = support::http_request(&http, "GET", "/healthz", &[], "").await;
    assert_eq!(r.status, 503, "{}", r.text());
    let body = r.json();
    assert_eq!(body["ready"], false);
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("not bootstrapped"), "{reasons}");
    assert!(reasons.contains("no onion path"), "{reasons}");
    drop(lonely);

    // After: on a devnet, ready once the pool is in and a path is built.
    let n = support::net("api-metrics", support::FAST_CONFIG).await;
    let data = n.dir.path().join("d");
    let cmd = support::networked_command(&data, &n.manifest, &n.config);
    let daemon = tokio::task::spawn_blocking(move || Daemon::start_with(&data, cmd))
        .await
        .expect("start");
    let http = daemon.http.clone().expect("http");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = support::http_request(&http, "GET", "/healthz", &[], "").await;
        if r.status == 200 {
            assert_eq!(r.json(), serde_json::json!({"ready": true, "reasons": []}));
            break;
        }
        assert_eq!(r.status, 503);
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready: {}",
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let channel = daemon.channel().await;
    let mut admin = clients(&channel, bearer(&daemon.admin_token));
    let alice = admin
        .ids
        .create_identity(create("alice"))
        .await
        .expect("alice")
        .into_inner();
    let bob = admin
        .ids
        .create_identity(create("bob"))
        .await
        .expect("bob")
        .into_inner();
    let alice_id = alice.identity.expect("identity").account_id;
    let bob_id = bob.identity.expect("identity").account_id;
    let before = scrape(&http).await;
    let listed = [
        "sessiond_onion_requests_total",
        "sessiond_onion_request_duration_seconds_count",
        "sessiond_path_builds_total",
        "sessiond_path_drops_total",
        "sessiond_path_strikes_total",
        "sessiond_messages_sent_total",
        "sessiond_messages_received_total",
        "sessiond_messages_failed_total",
        "sessiond_poll_rounds_total",
        "sessiond_poll_errors_total",
        "sessiond_outbox_depth",
        "sessiond_outbox_oldest_age_seconds",
        "sessiond_adapter_connections",
        "sessiond_event_log_events",
        "sessiond_paths",
        "sessiond_snode_pool_size",
    ];
    let names: Vec<&str> = before.iter().map(|s| s.name.as_str()).collect();
    for series in listed {
        if series.starts_with("sessiond_onion_request") {
            continue; // no request yet, perhaps
        }
        assert!(names.contains(&series), "{series} missing from /metrics");
    }
    assert!(prom::sum(&before, "sessiond_path_builds_total", &[("kind", "first")]) >= 1.0);
    assert!(prom::sum(&before, "sessiond_paths", &[]) >= 1.0);
    assert_eq!(prom::sum(&before, "sessiond_messages_sent_total", &[]), 0.0);

    const TEXT: &str = "metrics should never see this text";
    admin
        .msgs
        .send_message(SendMessageRequest {
            identity: "alice".into(),
            recipient: bob_id.clone(),
            text: TEXT.into(),
            ..Default::default()
        })
        .await
        .expect("send");
    // An IRC connection shows in the front ends' gauge.
    let irc = tokio::net::TcpStream::connect(daemon.irc.clone().expect("irc"))
        .await
        .expect("irc connect");
    let after = loop {
        let s = scrape(&http).await;
        let got = prom::sum(&s, "sessiond_messages_received_total", &[]);
        let irc_open = prom::sum(&s, "sessiond_adapter_connections", &[("front_end", "irc")]);
        if got >= 1.0 && irc_open >= 1.0 {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob never received alice's message (received {got}, IRC connections {irc_open}): {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(irc);
    assert_eq!(prom::sum(&after, "sessiond_messages_sent_total", &[]), 1.0);
    let stored = [("kind", "store"), ("outcome", "ok"), ("hops", "3")];
    assert!(prom::sum(&after, "sessiond_onion_requests_total", &stored) >= 1.0);
    let retrieved = [("kind", "retrieve"), ("outcome", "ok")];
    assert!(prom::sum(&after, "sessiond_onion_requests_total", &retrieved) >= 1.0);
    assert!(
        prom::sum(
            &after,
            "sessiond_onion_request_duration_seconds_count",
            &[("kind", "store")]
        ) >= 1.0
    );
    assert!(
        prom::sum(&after, "sessiond_poll_rounds_total", &[])
            > prom::sum(&before, "sessiond_poll_rounds_total", &[])
    );
    assert!(
        prom::sum(&after, "sessiond_event_log_events", &[])
            >= prom::sum(&before, "sessiond_event_log_events", &[]) + 2.0
    );
    assert_eq!(prom::sum(&after, "sessiond_outbox_depth", &[]), 0.0);
    let names: Vec<&str> = after.iter().map(|s| s.name.as_str()).collect();
    for series in listed {
        assert!(names.contains(&series), "{series} missing from /metrics");
    }
    // No identifier in any label: short enum-like values only, none of the names, ids or text.
    for s in &after {
        for (k, v) in &s.labels {
            assert!(
                v.len() <= 12
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-._".contains(c)),
                "label {k}={v:?} of {} looks like data",
                s.name
            );
            for secret in [&alice_id, &bob_id, "alice", "bob", TEXT] {
                assert!(!v.contains(secret) && !k.contains(secret));
            }
        }
    }

    status_page(&daemon, &http).await;
    daemon.terminate();
    n.devnet.shutdown().await;
}

/// The status page and its data: only with the admin token.
async fn status_page(daemon: &Daemon, http: &str) {
    use support::http_request as req;
    // The page itself is a shell without data; the data needs the token.
    let page = req(http, "GET", "/", &[], "").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<title>sessiond status</title>"));
    assert!(!page.text().contains("alice"));
    assert!(page.header("content-security-policy").is_some());
    for asset in ["/app.js", "/style.css"] {
        assert_eq!(req(http, "GET", asset, &[], "").await.status, 200);
    }
    let denied = req(http, "GET", "/api/status", &[], "").await;
    assert_eq!(denied.status, 401);
    assert!(!denied.text().contains("alice"));

    // Bad logins: no cookie.
    for (body, status) in [
        (r#"{"token":"wrong"}"#.to_owned(), 401),
        ("not json".to_owned(), 400),
        (r#"{"nope":1}"#.to_owned(), 400),
        (format!(r#"{{"token":"{}"}}"#, "x".repeat(10_000)), 413),
    ] {
        let r = req(http, "POST", "/login", &[], &body).await;
        assert_eq!(r.status, status, "{body:.40}: {}", r.text());
        assert!(r.header("set-cookie").is_none());
    }
    let login = format!(r#"{{"token":"{}"}}"#, daemon.admin_token);
    let r = req(http, "POST", "/login", &[], &login).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let set = r.header("set-cookie").expect("cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(
        !set.contains(&daemon.admin_token),
        "the cookie is not the token"
    );
    let cookie = set.split(';').next().expect("name=value").to_owned();

    let r = req(http, "GET", "/api/status", &[("cookie", &cookie)], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json();
    let names: Vec<&str> = report["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(report["health"]["ready"], true);
    let paths = report["paths"].as_array().expect("paths");
    assert!(!paths.is_empty());
    assert_eq!(paths[0]["hops"].as_array().map(Vec::len), Some(3));
    assert!(paths[0]["built_at_ms"].as_u64().is_some());

    // A bearer token works too; a forged cookie or a wrong token does not.
    let bearer = format!("bearer {}", daemon.admin_token);
    assert_eq!(
        req(
            http,
            "GET",
            "/api/status",
            &[("authorization", &bearer)],
            ""
        )
        .await
        .status,
        200
    );
    let forged = format!("sessiond_status={}", "0".repeat(64));
    assert_eq!(
        req(http, "GET", "/api/status", &[("cookie", &forged)], "")
            .await
            .status,
        401
    );
    let wrong = "Bearer 0000";
    assert_eq!(
        req(http, "GET", "/api/status", &[("authorization", wrong)], "")
            .await
            .status,
        401
    );

    let r = req(http, "POST", "/logout", &[("cookie", &cookie)], "").await;
    assert_eq!(r.status, 204);
    assert!(r
        .header("set-cookie")
        .is_some_and(|c| c.contains("Max-Age=0")));
    assert_eq!(req(http, "POST", "/metrics", &[], "").await.status, 405);
    assert_eq!(req(http, "GET", "/nope", &[], "").await.status, 404);
}
