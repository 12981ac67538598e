//! The gRPC API of a real `sessiond` process over TCP on 127.0.0.1: identities, auth, bad
//! input, Send + Subscribe (backlog, live, resume), History, Conversations, Network, health.

#[path = "support/daemon.rs"]
mod support;

use std::time::Duration;

use sessiond_api::v1::{
    event, CreateIdentityRequest, CreateTokenRequest, DeleteIdentityRequest, DeliveryState,
    ExportRecoveryPasswordRequest, GetNetworkStatusRequest, ListContactsRequest,
    ListConversationsRequest, ListEventsRequest, ListIdentitiesRequest, RebuildPathsRequest,
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
        (
            SendMessageRequest {
                recipient: format!("03{}", "11".repeat(32)),
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
