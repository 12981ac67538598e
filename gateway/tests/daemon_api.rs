//! The gRPC API of a real `sessiond` process over TCP on 127.0.0.1: identities, auth, bad
//! input, Send + Subscribe (backlog, live, resume), History, Conversations, Network, health.

#[path = "support/daemon.rs"]
mod support;

use std::time::Duration;

use sessiond_api::v1::{
    event, CreateIdentityRequest, CreateTokenRequest, DeliveryState, ExportRecoveryPasswordRequest,
    HistoryRequest, ListContactsRequest, ListConversationsRequest, ListIdentitiesRequest,
    NetworkStatusRequest, RebuildPathsRequest, RemoveIdentityRequest, RestoreIdentityRequest,
    SendRequest, SetContactNameRequest, SubscribeRequest,
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
        .create(create("alice"))
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
        .restore(RestoreIdentityRequest {
            name: "alice2".into(),
            recovery_password: alice.recovery_password.clone(),
        })
        .await
        .expect_err("same account twice");
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let err = admin
        .ids
        .create(create("alice"))
        .await
        .expect_err("name taken");
    assert_eq!(err.code(), Code::AlreadyExists);

    // Remove, then restore from the recovery password: same Account ID.
    let removed = admin
        .ids
        .remove(RemoveIdentityRequest {
            name: "alice".into(),
        })
        .await
        .expect("remove")
        .into_inner();
    assert_eq!(removed.account_id, alice_id.account_id);
    let restored = admin
        .ids
        .restore(RestoreIdentityRequest {
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
    admin.ids.create(create("bob")).await.expect("create bob");
    let list = admin
        .ids
        .list(ListIdentitiesRequest {})
        .await
        .expect("list")
        .into_inner();
    let names: Vec<_> = list.identities.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);

    // Bad input: each a clear INVALID_ARGUMENT / NOT_FOUND.
    for (name, code) in [("", Code::InvalidArgument), ("a b", Code::InvalidArgument)] {
        let err = admin.ids.create(create(name)).await.expect_err("bad name");
        assert_eq!(err.code(), code, "{name:?}: {err:?}");
        assert!(err.message().starts_with("name:"), "{}", err.message());
    }
    let err = admin
        .ids
        .restore(RestoreIdentityRequest {
            name: "carol".into(),
            recovery_password: "not a recovery password".into(),
        })
        .await
        .expect_err("bad password");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = admin
        .ids
        .remove(RemoveIdentityRequest {
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
        .list(ListIdentitiesRequest {})
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("admin.token"), "{}", err.message());
    let mut wrong = clients(&channel, bearer(&"0".repeat(64)));
    let err = wrong
        .ids
        .list(ListIdentitiesRequest {})
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
        .list(ListIdentitiesRequest {})
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.identities.len(), 1);
    assert_eq!(list.identities[0].name, "bob");
    let history = |identity: &str| HistoryRequest {
        identity: identity.into(),
        ..HistoryRequest::default()
    };
    bob.msgs.history(history("bob")).await.expect("own history");
    for other in ["alice", "nobody"] {
        let err = bob
            .msgs
            .history(history(other))
            .await
            .expect_err("other identity");
        assert_eq!(err.code(), Code::PermissionDenied, "{other}: {err:?}");
    }
    let err = bob
        .ids
        .create(create("mallory"))
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
        .remove(RemoveIdentityRequest { name: "bob".into() })
        .await
        .expect("remove bob");
    let err = bob
        .ids
        .list(ListIdentitiesRequest {})
        .await
        .expect_err("revoked");
    assert_eq!(err.code(), Code::Unauthenticated);

    // An offline daemon (SESSIOND_OFFLINE=1 in the test support) has no network: UNAVAILABLE.
    let err = admin
        .net
        .status(NetworkStatusRequest {})
        .await
        .expect_err("no net");
    assert_eq!(err.code(), Code::Unavailable);
    let err = bob_rebuild(&mut anon).await;
    assert_eq!(err.code(), Code::Unauthenticated);

    // Standard health service answers without a token.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "sessiond.v1.Messages".into(),
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
    admin.ids.create(create("alice")).await.expect("alice");
    let bob_id = admin
        .ids
        .create(create("bob"))
        .await
        .expect("bob")
        .into_inner()
        .identity
        .expect("identity")
        .account_id;

    let send = |text: &str| SendRequest {
        identity: "alice".into(),
        recipient: bob_id.clone(),
        text: text.into(),
        ..Default::default()
    };
    // Bad sends write nothing.
    for (req, code) in [
        (
            SendRequest {
                recipient: "05abc".into(),
                ..send("x")
            },
            Code::InvalidArgument,
        ),
        (
            SendRequest {
                recipient: format!("03{}", "11".repeat(32)),
                ..send("x")
            },
            Code::InvalidArgument,
        ),
        (send(""), Code::InvalidArgument),
        (send(&"x".repeat(2001)), Code::InvalidArgument),
        (
            SendRequest {
                identity: "nobody".into(),
                ..send("x")
            },
            Code::NotFound,
        ),
        (
            SendRequest {
                identity: "".into(),
                ..send("x")
            },
            Code::InvalidArgument,
        ),
    ] {
        let err = admin.msgs.send(req).await.expect_err("bad send");
        assert_eq!(err.code(), code, "{err:?}");
    }

    // Two messages before anyone subscribes: the backlog.
    let r1 = admin
        .msgs
        .send(send("one"))
        .await
        .expect("send")
        .into_inner();
    assert_eq!((r1.seq, r1.state), (1, DeliveryState::Queued as i32));
    assert_eq!(r1.message_id.len(), 32);
    admin
        .msgs
        .send(send(&"é".repeat(2000)))
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
    let e1 = next_event(&mut stream).await;
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
    admin.msgs.send(send("three")).await.expect("send");
    let e3 = next_event(&mut stream).await;
    assert_eq!(e3.seq, 3);
    assert_eq!(e3.identity, "alice");
    drop(stream);

    // Resume from the last seq seen: exactly what was missed.
    admin.msgs.send(send("four")).await.expect("send");
    admin.msgs.send(send("five")).await.expect("send");
    let mut resumed = admin
        .msgs
        .subscribe(SubscribeRequest {
            identity: "alice".into(),
            from_seq: 3,
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
        .history(HistoryRequest {
            identity: "bob".into(),
            ..HistoryRequest::default()
        })
        .await
        .expect("history")
        .into_inner();
    assert!(bob_history.events.is_empty());

    // History pages.
    let page = admin
        .msgs
        .history(HistoryRequest {
            identity: "alice".into(),
            limit: 2,
            newest_first: true,
            ..HistoryRequest::default()
        })
        .await
        .expect("history")
        .into_inner();
    assert_eq!(
        page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [5, 4]
    );
    assert!(page.more);

    // Conversations and contacts.
    let convs = admin
        .convs
        .list(ListConversationsRequest {
            identity: "alice".into(),
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
        })
        .await
        .expect("contacts")
        .into_inner()
        .contacts;
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].name, "Bob");
    let convs = admin
        .convs
        .list(ListConversationsRequest {
            identity: "alice".into(),
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
        .history(HistoryRequest {
            identity: "alice".into(),
            ..HistoryRequest::default()
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
    assert!(!all.more);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_of_a_removed_identity_gets_not_found() {
    let dir = TempDir::new("api-removed");
    let daemon = Daemon::start(dir.path());
    let channel = daemon.channel().await;
    let mut admin = clients(&channel, bearer(&daemon.admin_token));
    admin.ids.create(create("gone")).await.expect("create");
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
        .remove(RemoveIdentityRequest {
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

async fn next_event(s: &mut tonic::Streaming<sessiond_api::v1::Event>) -> sessiond_api::v1::Event {
    tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("an event within 10 s")
        .expect("stream ok")
        .expect("stream open")
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
        .create(create("alice"))
        .await
        .expect("alice")
        .into_inner();
    let bob = admin
        .ids
        .create(create("bob"))
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
        .send(SendRequest {
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
