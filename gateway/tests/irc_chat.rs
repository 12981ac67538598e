//! The IRC adapter end to end: two daemons on one devnet, an IRC user on each, driven by the
//! `irc` crate (a client library written by someone else): chat both ways with echo-message and
//! server-time, WHOIS shows the Account ID, a client that was away gets what it missed once,
//! CHATHISTORY answers (raw lines), typing both ways, and the `&session` control channel.

#[path = "support/daemon.rs"]
mod support;

#[path = "irc/common.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{identity_with_token, Raw, DEADLINE};
use irc::client::prelude::{Capability, Client, Command, Config, Message};
use irc::client::ClientStream;
use session_devnet::{Devnet, DevnetConfig};
use sessiond_api::v1::conversation_service_client::ConversationServiceClient;
use sessiond_api::v1::message_service_client::MessageServiceClient;
use sessiond_api::v1::{event, GetContactRequest, ListEventsRequest};
use support::{networked_command, Daemon, TempDir};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

const CONFIG: &str = r#"
[poll]
active_interval_ms = 150
idle_interval_ms = 400
idle_after_secs = 5

[outbox]
max_attempts = 30
backoff_initial_ms = 100
backoff_max_ms = 500
"#;

struct Side {
    daemon: Daemon,
    channel: Channel,
    /// The daemon's own IRC server.
    irc: String,
    account: String,
    token: String,
}

async fn side(dir: &TempDir, manifest: &Path, config: &Path, name: &str) -> Side {
    let data = dir.path().join(name);
    let cmd = networked_command(&data, manifest, config);
    let daemon = tokio::task::spawn_blocking(move || Daemon::start_with(&data, cmd))
        .await
        .expect("start daemon");
    let channel = daemon.channel().await;
    let (account, token) = identity_with_token(&channel, &daemon.admin_token, name).await;
    let irc = daemon.irc.clone().expect("the daemon runs its IRC server");
    Side {
        daemon,
        channel,
        irc,
        account,
        token,
    }
}

/// An `irc` crate client logged in with `token`, with the IRCv3 capabilities `caps`.
async fn connect(
    server: &str,
    token: &str,
    nick: &str,
    caps: &[Capability],
) -> (Client, ClientStream) {
    let (host, port) = server.rsplit_once(':').expect("host:port");
    let config = Config {
        nickname: Some(nick.to_owned()),
        username: Some(nick.to_owned()),
        realname: Some(format!("{nick} via irc crate")),
        server: Some(host.to_owned()),
        port: Some(port.parse().expect("port")),
        password: Some(token.to_owned()),
        max_messages_in_burst: Some(1000),
        ..Config::default()
    };
    let mut client = Client::from_config(config).await.expect("connect");
    if !caps.is_empty() {
        client.send_cap_req(caps).expect("CAP REQ");
    }
    client.identify().expect("identify");
    let stream = client.stream().expect("stream");
    (client, stream)
}

/// Reads messages until `want` holds for one; returns it.
async fn wait_msg(
    stream: &mut ClientStream,
    what: &str,
    mut want: impl FnMut(&Message) -> bool,
) -> Message {
    let until = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(Ok(m))) if want(&m) => return m,
            Ok(Some(Ok(m))) => seen.push(m.to_string()),
            other => panic!("waiting for {what}: {other:?}; saw {seen:#?}"),
        }
    }
}

fn tag<'a>(m: &'a Message, key: &str) -> Option<&'a str> {
    m.tags
        .as_ref()?
        .iter()
        .find(|t| t.0 == key)
        .map(|t| t.1.as_deref().unwrap_or(""))
}

/// The text of a PRIVMSG, if `m` is one.
fn privmsg(m: &Message) -> Option<(&str, &str)> {
    match &m.command {
        Command::PRIVMSG(target, text) => Some((target.as_str(), text.as_str())),
        _ => None,
    }
}

async fn wait_privmsg(stream: &mut ClientStream, text: &str) -> Message {
    wait_msg(stream, text, |m| privmsg(m).is_some_and(|(_, t)| t == text)).await
}

/// Polls the daemon until identity `name` has `n` incoming messages.
async fn incoming_until(channel: &Channel, token: &str, name: &str, n: usize) {
    let bearer = sessiond_api::client::Bearer::new(token).expect("token");
    let mut msgs = MessageServiceClient::with_interceptor(channel.clone(), bearer);
    let until = Instant::now() + DEADLINE;
    loop {
        let events = msgs
            .list_events(ListEventsRequest {
                identity: name.into(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("history")
            .into_inner()
            .events;
        let incoming = events
            .iter()
            .filter(|e| matches!(e.kind, Some(event::Kind::Incoming(_))))
            .count();
        if incoming >= n {
            return;
        }
        assert!(
            Instant::now() < until,
            "{name} has {incoming} of {n} messages"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_irc_users_on_two_daemons_chat_and_catch_up() {
    let devnet = Devnet::start(DevnetConfig {
        nodes: 9,
        swarm_size: 3,
        relay_timeout: Duration::from_secs(2),
        replication_timeout: Duration::from_secs(2),
        ..DevnetConfig::default()
    })
    .await
    .expect("devnet starts");
    let dir = TempDir::new("irc-chat");
    std::fs::create_dir_all(dir.path()).expect("temp dir");
    let manifest = dir.path().join("devnet.json");
    devnet.write_manifest(&manifest).expect("manifest");
    let config = dir.path().join("sessiond.toml");
    std::fs::write(&config, CONFIG).expect("config");
    let a = side(&dir, &manifest, &config, "alice").await;
    let b = side(&dir, &manifest, &config, "bob").await;
    // The daemon's handle for a nameless contact: "s" and 8 hex digits of its Account ID.
    let alice_nick = format!("s{}", &a.account[2..10]);
    let bob_nick = format!("s{}", &b.account[2..10]);

    let caps = [
        Capability::EchoMessage,
        Capability::ServerTime,
        Capability::Batch,
        Capability::Custom("message-tags"),
    ];
    let (alice, mut alice_in) = connect(&a.irc, &a.token, "alice", &caps).await;
    let (bob, mut bob_in) = connect(&b.irc, &b.token, "bob", &caps).await;
    for s in [&mut alice_in, &mut bob_in] {
        wait_msg(s, "the end of the welcome", |m| {
            m.to_string().contains(" 366 ")
        })
        .await;
    }

    // Alice writes to bob's Account ID. One conversation, one window: her query named by the
    // Account ID is renamed to bob's nick (a NICK from the Account ID), where his replies come
    // from; the echo goes to the nick, with a msgid and a time...
    alice.send_privmsg(&b.account, "hello bob").expect("send");
    let renamed = wait_msg(&mut alice_in, "the NICK line", |m| {
        matches!(m.command, Command::NICK(_))
    })
    .await;
    assert_eq!(renamed.source_nickname(), Some(b.account.as_str()));
    assert!(
        matches!(&renamed.command, Command::NICK(n) if *n == bob_nick),
        "{renamed:?}"
    );
    let echo = wait_privmsg(&mut alice_in, "hello bob").await;
    assert_eq!(privmsg(&echo).map(|p| p.0), Some(bob_nick.as_str()));
    assert_eq!(echo.source_nickname(), Some("alice"));
    assert!(
        tag(&echo, "msgid").is_some_and(|id| !id.is_empty()),
        "{echo:?}"
    );
    assert!(
        tag(&echo, "time").is_some_and(|t| t.ends_with('Z')),
        "{echo:?}"
    );
    // ...and arrives at bob from alice's nick, with the time she sent it.
    let got = wait_privmsg(&mut bob_in, "hello bob").await;
    assert_eq!(got.source_nickname(), Some(alice_nick.as_str()));
    assert_eq!(privmsg(&got).map(|p| p.0), Some("bob"));
    assert_eq!(
        tag(&got, "time"),
        tag(&echo, "time"),
        "the Session timestamp both sides"
    );

    // WHOIS shows the Account ID behind the nick.
    bob.send(Command::WHOIS(None, alice_nick.clone()))
        .expect("whois");
    let whois = wait_msg(&mut bob_in, "330", |m| m.to_string().contains(" 330 ")).await;
    assert!(whois.to_string().contains(&a.account), "{whois}");

    // Bob answers the nick; alice gets it from bob's nick. A long, multi-line message is split
    // into valid lines.
    bob.send_privmsg(&alice_nick, "hello alice").expect("send");
    wait_privmsg(&mut bob_in, "hello alice").await;
    let got = wait_privmsg(&mut alice_in, "hello alice").await;
    assert_eq!(got.source_nickname(), Some(bob_nick.as_str()));

    // Typing both ways (message-tags): +typing=active reaches the other side as a TAGMSG.
    let mut bob_raw = Raw::register(&b.irc, &b.token, "bobraw", "message-tags").await;
    bob_raw
        .send(&format!("@+typing=active TAGMSG {alice_nick}"))
        .await;
    let typing = wait_msg(&mut alice_in, "typing", |m| {
        let s = m.to_string();
        s.contains("TAGMSG") && s.contains("+typing=active")
    })
    .await;
    assert_eq!(typing.source_nickname(), Some(bob_nick.as_str()));
    drop(bob_raw);

    // Bob goes away; alice writes three messages; bob comes back without CHATHISTORY and gets
    // exactly those, once, in a batch, with their times.
    bob.send_quit("brb").expect("quit");
    drop(bob);
    wait_msg(&mut bob_in, "ERROR", |m| {
        matches!(m.command, Command::ERROR(_))
    })
    .await;
    drop(bob_in);
    for i in 0..3 {
        alice
            .send_privmsg(&bob_nick, format!("missed {i}"))
            .expect("send");
        wait_privmsg(&mut alice_in, &format!("missed {i}")).await;
    }
    incoming_until(&b.channel, &b.token, "bob", 4).await;
    let (bob, mut bob_in) = connect(&b.irc, &b.token, "bob", &caps).await;
    let mut replayed = Vec::new();
    let mut batch = None;
    while replayed.len() < 3 {
        let m = wait_msg(&mut bob_in, "the replay", |m| {
            privmsg(m).is_some() || m.to_string().contains("BATCH")
        })
        .await;
        if let Some((_, text)) = privmsg(&m) {
            assert!(tag(&m, "time").is_some(), "{m:?}");
            assert_eq!(
                tag(&m, "batch"),
                batch.as_deref(),
                "replay lines are in the batch"
            );
            assert_eq!(m.source_nickname(), Some(alice_nick.as_str()));
            replayed.push(text.to_owned());
        } else if batch.is_none() {
            let line = m.to_string();
            assert!(line.to_ascii_lowercase().contains("chathistory"), "{line}");
            let id = line
                .split(' ')
                .find_map(|w| w.strip_prefix('+'))
                .expect("batch id")
                .to_owned();
            batch = Some(id);
        }
    }
    replayed.sort();
    assert_eq!(replayed, ["missed 0", "missed 1", "missed 2"]);
    assert!(batch.is_some(), "the replay came in a batch");
    // Nothing more: the next PRIVMSG bob sees is a new one.
    alice.send_privmsg(&bob_nick, "welcome back").expect("send");
    // (The irc crate writes only while its stream is read: read the echo.)
    wait_privmsg(&mut alice_in, "welcome back").await;
    let next = wait_msg(&mut bob_in, "the next message", |m| privmsg(m).is_some()).await;
    assert_eq!(privmsg(&next).map(|p| p.1), Some("welcome back"));

    // A client with draft/chathistory gets no replay, and asks itself.
    let mut hist = Raw::register(
        &b.irc,
        &b.token,
        "bobhist",
        "draft/chathistory batch server-time message-tags",
    )
    .await;
    hist.send(&format!("CHATHISTORY LATEST {alice_nick} * 10"))
        .await;
    let lines = read_batch(&mut hist).await;
    let texts: Vec<&str> = lines
        .iter()
        .map(|l| l.rsplit_once(" :").map_or("", |p| p.1))
        .collect();
    assert_eq!(texts.len(), 6, "{lines:#?}");
    assert_eq!(texts[..2], ["hello bob", "hello alice"]);
    assert_eq!(texts[5], "welcome back");
    assert!(lines
        .iter()
        .all(|l| l.contains("time=") && l.contains("msgid=")));
    // BEFORE the first "missed" message: the two before it.
    let first_missed = lines
        .iter()
        .find(|l| l.contains(":missed "))
        .expect("missed line");
    let msgid = first_missed
        .split(['@', ';', ' '])
        .find_map(|t| t.strip_prefix("msgid="))
        .expect("msgid")
        .to_owned();
    hist.send(&format!("CHATHISTORY BEFORE {alice_nick} msgid={msgid} 10"))
        .await;
    let before = read_batch(&mut hist).await;
    assert_eq!(before.len(), 2, "{before:#?}");
    hist.send(&format!("CHATHISTORY AFTER {alice_nick} msgid={msgid} 1"))
        .await;
    assert_eq!(read_batch(&mut hist).await.len(), 1);
    // By time: everything since the epoch, and BETWEEN two references.
    hist.send(&format!(
        "CHATHISTORY AFTER {alice_nick} timestamp=2000-01-01T00:00:00.000Z 100"
    ))
    .await;
    assert_eq!(read_batch(&mut hist).await.len(), 6);
    hist.send(&format!(
        "CHATHISTORY BETWEEN {alice_nick} msgid={msgid} timestamp=2000-01-01T00:00:00.000Z 100"
    ))
    .await;
    assert_eq!(read_batch(&mut hist).await.len(), 2);
    hist.send("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 10").await;
    let targets = read_batch(&mut hist).await;
    assert_eq!(targets.len(), 1, "{targets:#?}");
    assert!(targets[0].contains(&format!("CHATHISTORY TARGETS {alice_nick} ")));
    hist.send("CHATHISTORY LATEST nobody * 10").await;
    hist.wait_for("FAIL CHATHISTORY INVALID_TARGET LATEST nobody")
        .await;
    hist.send(&format!("CHATHISTORY LATEST {alice_nick} * banana"))
        .await;
    hist.wait_for("FAIL CHATHISTORY INVALID_PARAMS LATEST")
        .await;

    // A long, multi-line Session message (sent by alice's gRPC client) reaches bob as valid
    // IRC lines, split at newlines and under 512 bytes each, nothing lost.
    let mut bob_raw = Raw::register(&b.irc, &b.token, "bobraw2", "message-tags").await;
    let long = format!("first line\n{}\nlast line", "é".repeat(700));
    sessiond_api::client::Client::new(a.channel.clone(), &a.token)
        .expect("token")
        .messages
        .send_message(sessiond_api::v1::SendMessageRequest {
            identity: "alice".into(),
            recipient: b.account.clone(),
            text: long.clone(),
            ..Default::default()
        })
        .await
        .expect("send");
    wait_privmsg(&mut alice_in, "first line").await;
    bob_raw.wait_for(" :first line").await;
    let mut rest = String::new();
    while !rest.ends_with("last line") {
        let line = bob_raw.wait_for(" PRIVMSG bobraw2 ").await;
        // Without its tags, a line is at most 512 bytes with CR LF.
        let body = line.split_once(' ').map_or("", |p| p.1);
        assert!(body.len() + 2 <= 512, "{} bytes: {line}", body.len() + 2);
        rest.push_str(
            body.split_once(" PRIVMSG bobraw2 ")
                .map_or("", |p| p.1)
                .trim_start_matches(':'),
        );
    }
    assert_eq!(rest, format!("{}last line", "é".repeat(700)));
    let m = wait_privmsg(&mut bob_in, "last line").await;
    assert_eq!(m.source_nickname(), Some(alice_nick.as_str()));

    // The control channel, through the client library.
    let ask = |text: &str| bob.send_privmsg("&session", text).expect("send");
    let from_root = |m: &Message| {
        m.source_nickname() == Some("root") && privmsg(m).is_some_and(|(t, _)| t == "&session")
    };
    ask("account");
    let m = wait_msg(&mut bob_in, "account", from_root).await;
    assert!(
        privmsg(&m).is_some_and(|(_, t)| t.contains(&b.account)),
        "{m:?}"
    );
    ask("contacts");
    wait_msg(&mut bob_in, "contacts", |m| {
        from_root(m)
            && privmsg(m).is_some_and(|(_, t)| t.starts_with(&alice_nick) && t.contains(&a.account))
    })
    .await;
    ask("hlep");
    let m = wait_msg(&mut bob_in, "a suggestion", from_root).await;
    assert!(
        privmsg(&m).is_some_and(|(_, t)| t.contains("Did you mean \"help\"")),
        "{m:?}"
    );
    ask("identities new eve");
    let m = wait_msg(&mut bob_in, "admin only", from_root).await;
    assert!(
        privmsg(&m).is_some_and(|(_, t)| t.contains("admin token")),
        "{m:?}"
    );
    ask("network status");
    let m = wait_msg(&mut bob_in, "network", from_root).await;
    assert!(
        privmsg(&m).is_some_and(|(_, t)| t.starts_with("Network devnet: online")),
        "{m:?}"
    );
    ask(&format!("contacts rename {alice_nick} ally"));
    let m = wait_msg(&mut bob_in, "the NICK line", |m| {
        matches!(m.command, Command::NICK(_))
    })
    .await;
    assert_eq!(m.source_nickname(), Some(alice_nick.as_str()));
    assert!(matches!(&m.command, Command::NICK(n) if n == "ally"));
    bob.send_privmsg("ally", "renamed you").expect("send");
    let echo = wait_privmsg(&mut bob_in, "renamed you").await;
    assert_eq!(privmsg(&echo).map(|p| p.0), Some("ally"));
    wait_privmsg(&mut alice_in, "renamed you").await;

    // Blocking through root: the daemon's contact says so, and the account's other devices
    // learn it through config sync (e2e_messaging).
    let blocked = || async {
        let bearer = sessiond_api::client::Bearer::new(&b.token).expect("token");
        let mut convs = ConversationServiceClient::with_interceptor(b.channel.clone(), bearer);
        convs
            .get_contact(GetContactRequest {
                identity: "bob".into(),
                account_id: a.account.clone(),
            })
            .await
            .expect("contact")
            .into_inner()
            .contact
            .expect("contact")
            .blocked
    };
    ask("contacts block ally");
    let m = wait_msg(&mut bob_in, "blocked", from_root).await;
    assert!(
        privmsg(&m).is_some_and(|(_, t)| t.starts_with("ally is blocked")),
        "{m:?}"
    );
    assert!(blocked().await);
    ask("contacts unblock ally");
    let m = wait_msg(&mut bob_in, "unblocked", from_root).await;
    assert!(
        privmsg(&m).is_some_and(|(_, t)| t == "ally is no longer blocked."),
        "{m:?}"
    );
    assert!(!blocked().await);
    ask("contacts block nobody");
    let m = wait_msg(&mut bob_in, "no such contact", from_root).await;
    assert!(
        privmsg(&m).is_some_and(|(_, t)| t.starts_with("No contact is called nobody")),
        "{m:?}"
    );
    ask("contacts block");
    let m = wait_msg(&mut bob_in, "usage", from_root).await;
    assert!(
        privmsg(&m).is_some_and(|(_, t)| t.starts_with("Usage: contacts block")),
        "{m:?}"
    );
    ask("account");
    let m = wait_msg(&mut bob_in, "sync state", |m| {
        from_root(m) && privmsg(m).is_some_and(|(_, t)| t.contains("settings"))
    })
    .await;
    assert!(
        privmsg(&m).is_some_and(|(_, t)| t.contains("in sync with your other devices")),
        "{m:?}"
    );

    // Alice has a second connection: bob's message shows there too, and her own messages from
    // the first appear there as sent by her.
    let (_alice2, mut alice2_in) = connect(&a.irc, &a.token, "alice", &caps[..2]).await;
    wait_msg(&mut alice2_in, "welcome", |m| {
        m.to_string().contains(" 366 ")
    })
    .await;
    alice
        .send_privmsg(&bob_nick, "from my first client")
        .expect("send");
    wait_privmsg(&mut alice_in, "from my first client").await;
    let m = wait_privmsg(&mut alice2_in, "from my first client").await;
    assert_eq!(privmsg(&m).map(|p| p.0), Some(bob_nick.as_str()));
    wait_privmsg(&mut bob_in, "from my first client").await;

    drop((alice, bob));
    drop((a.daemon, b.daemon));
    devnet.shutdown().await;
}

/// Reads one batch (BATCH + … BATCH -); returns the lines inside it.
async fn read_batch(c: &mut Raw) -> Vec<String> {
    let start = c.wait_for(" BATCH +").await;
    let id = start
        .split(' ')
        .find_map(|w| w.strip_prefix('+'))
        .expect("batch id")
        .to_owned();
    let mut lines = Vec::new();
    loop {
        let line = c.line().await.expect("batch lines");
        if line.contains(&format!("BATCH -{id}")) {
            return lines;
        }
        assert!(line.contains(&format!("batch={id}")), "{line}");
        lines.push(line);
    }
}

/// `run --devnet`, as the quick start has it: the echo identity is the nick `echo` for `me`
/// from the first message on (its display name and handle), and writing to its Account ID
/// turns the query into echo's, where the reply lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_devnet_echo_is_named_echo() {
    let dir = TempDir::new("irc-devnet");
    let data = dir.path().join("d");
    let mut cmd = support::run_command(&data);
    cmd.env_remove("SESSIOND_OFFLINE")
        .args(["--devnet", "--devnet-nodes", "6"]);
    let data2 = data.clone();
    let d = tokio::task::spawn_blocking(move || Daemon::start_with(&data2, cmd))
        .await
        .expect("start");
    let bearer = sessiond_api::client::Bearer::new(&d.admin_token).expect("token");
    let mut ids =
        sessiond_api::v1::identity_service_client::IdentityServiceClient::with_interceptor(
            d.channel().await,
            bearer,
        );
    let listed = ids
        .list_identities(sessiond_api::v1::ListIdentitiesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .identities;
    let names: Vec<(&str, &str)> = listed
        .iter()
        .map(|i| (i.name.as_str(), i.display_name.as_str()))
        .collect();
    assert!(names.contains(&("me", "me")), "{names:?}");
    assert!(names.contains(&("echo", "echo")), "{names:?}");
    let echo = listed
        .iter()
        .find(|i| i.name == "echo")
        .expect("echo")
        .account_id
        .clone();

    let irc = d.irc.clone().expect("IRC");
    let mut me = Raw::register(&irc, &format!("me:{}", d.admin_token), "me", "echo-message").await;
    me.send(&format!("PRIVMSG {echo} :ping")).await;
    let nick = me.wait_for(" NICK ").await;
    assert!(
        nick.starts_with(&format!(":{echo}!")) && nick.ends_with(" NICK echo"),
        "{nick}"
    );
    let echoed = me.wait_for(" PRIVMSG echo ").await;
    assert!(echoed.ends_with(" PRIVMSG echo ping"), "{echoed}");
    let reply = me.wait_for(":echo: ping").await;
    assert!(reply.starts_with(":echo!"), "{reply}");
    drop(me);
    drop(d);
}

/// The irc crate writes what a client sent while its stream is read: reads (and drops) what
/// comes in for a moment.
async fn flush(stream: &mut ClientStream) {
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_a_channel_invite_join_talk_topic_kick() {
    let devnet = Devnet::start(DevnetConfig {
        nodes: 9,
        swarm_size: 3,
        relay_timeout: Duration::from_secs(2),
        replication_timeout: Duration::from_secs(2),
        ..DevnetConfig::default()
    })
    .await
    .expect("devnet starts");
    let dir = TempDir::new("irc-group");
    std::fs::create_dir_all(dir.path()).expect("temp dir");
    let manifest = dir.path().join("devnet.json");
    devnet.write_manifest(&manifest).expect("manifest");
    let config = dir.path().join("sessiond.toml");
    std::fs::write(&config, CONFIG).expect("config");
    let a = side(&dir, &manifest, &config, "alice").await;
    let b = side(&dir, &manifest, &config, "bob").await;
    let alice_nick = format!("s{}", &a.account[2..10]);
    let bob_nick = format!("s{}", &b.account[2..10]);
    // Alice's client has message-tags (msgids, reactions) and echo-message (her own msgids);
    // bob's has none (the fallbacks).
    let tags = [Capability::Custom("message-tags"), Capability::EchoMessage];
    let (alice, mut alice_in) = connect(&a.irc, &a.token, "alice", &tags).await;
    let (bob, mut bob_in) = connect(&b.irc, &b.token, "bob", &[]).await;
    for s in [&mut alice_in, &mut bob_in] {
        wait_msg(s, "the end of the welcome", |m| {
            m.to_string().contains(" 366 ")
        })
        .await;
    }

    // Alice creates a group with bob (through the API; IRC has no command for it).
    let bearer = sessiond_api::client::Bearer::new(&a.token).expect("token");
    let mut groups = sessiond_api::v1::group_service_client::GroupServiceClient::with_interceptor(
        a.channel.clone(),
        bearer,
    );
    let gid = groups
        .create_group(sessiond_api::v1::CreateGroupRequest {
            identity: "alice".into(),
            name: "Hikers".into(),
            members: vec![b.account.clone()],
            ..Default::default()
        })
        .await
        .expect("create")
        .into_inner()
        .group
        .expect("group")
        .group_id;
    // Alice's client is put in #hikers, its topic naming the group ID.
    wait_msg(
        &mut alice_in,
        "alice's JOIN",
        |m| matches!(&m.command, Command::JOIN(c, _, _) if c == "#hikers"),
    )
    .await;
    let topic = wait_msg(&mut alice_in, "the topic", |m| {
        m.to_string().contains(" 332 ")
    })
    .await;
    assert!(topic.to_string().contains(&gid), "{topic}");

    // Bob is invited; JOIN accepts.
    let invite = wait_msg(
        &mut bob_in,
        "the INVITE",
        |m| matches!(&m.command, Command::INVITE(_, c) if c == "#hikers"),
    )
    .await;
    assert_eq!(invite.source_nickname(), Some(alice_nick.as_str()));
    bob.send_join("#hikers").expect("join");
    wait_msg(
        &mut bob_in,
        "bob's JOIN",
        |m| matches!(&m.command, Command::JOIN(c, _, _) if c == "#hikers"),
    )
    .await;
    // NAMES shows alice as an admin, once bob's daemon read the members list.
    let until = Instant::now() + DEADLINE;
    loop {
        bob.send(Command::NAMES(Some("#hikers".into()), None))
            .expect("names");
        let names = wait_msg(&mut bob_in, "353", |m| m.to_string().contains(" 353 ")).await;
        if names.to_string().contains(&format!("@{alice_nick}")) {
            break;
        }
        assert!(Instant::now() < until, "{names}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // They talk in the channel (bob retries until his daemon has read the group's keys).
    let until = Instant::now() + DEADLINE;
    let hi_all_id = loop {
        bob.send_privmsg("#hikers", "hi all").expect("say");
        flush(&mut bob_in).await;
        let m = tokio::time::timeout(Duration::from_secs(3), async {
            wait_msg(&mut alice_in, "bob's post", |m| {
                privmsg(m).is_some_and(|(t, x)| t == "#hikers" && x == "hi all")
            })
            .await
        })
        .await;
        if let Ok(m) = m {
            assert_eq!(m.source_nickname(), Some(bob_nick.as_str()));
            break tag(&m, "msgid").expect("a msgid").to_owned();
        }
        if Instant::now() >= until {
            let bearer = sessiond_api::client::Bearer::new(&b.token).expect("token");
            let mut msgs = MessageServiceClient::with_interceptor(b.channel.clone(), bearer);
            let events = msgs
                .list_events(ListEventsRequest {
                    identity: "bob".into(),
                    page_size: 1000,
                    ..Default::default()
                })
                .await
                .expect("history")
                .into_inner()
                .events;
            let mut lines = Vec::new();
            while let Ok(Some(Ok(m))) =
                tokio::time::timeout(Duration::from_millis(500), bob_in.next()).await
            {
                lines.push(m.to_string());
            }
            panic!("bob's post never arrived; bob saw {lines:#?}; bob's log: {events:#?}");
        }
    };
    alice.send_privmsg("#hikers", "welcome").expect("say");
    flush(&mut alice_in).await;
    let got = wait_privmsg(&mut bob_in, "welcome").await;
    assert_eq!(privmsg(&got).map(|p| p.0), Some("#hikers"));
    assert_eq!(got.source_nickname(), Some(alice_nick.as_str()));

    // Alice reacts to bob's post: she sees her reaction as a TAGMSG in the channel, bob (no
    // tags) as a notice in the channel from her.
    send_line(
        &alice,
        &format!("@+draft/react=🎉;+draft/reply={hi_all_id} TAGMSG #hikers"),
    );
    wait_msg(&mut alice_in, "alice's own reaction", |m| {
        m.to_string().contains("TAGMSG #hikers")
            && tag(m, "+draft/react") == Some("🎉")
            && tag(m, "+draft/reply") == Some(hi_all_id.as_str())
    })
    .await;
    let reacted = wait_msg(&mut bob_in, "the reaction notice", |m| {
        notice(m).is_some_and(|(c, t)| c == "#hikers" && t.contains("reacted 🎉"))
    })
    .await;
    assert_eq!(reacted.source_nickname(), Some(alice_nick.as_str()));
    // A reaction to a msgid of another conversation is a FAIL, not a crash.
    send_line(&alice, "@+draft/react=🎉;+draft/reply=1 TAGMSG #hikers");
    wait_msg(&mut alice_in, "FAIL UNKNOWN_MSGID", |m| {
        m.to_string().contains("UNKNOWN_MSGID")
    })
    .await;
    // Only its author deletes a group message: alice may not delete bob's post.
    send_line(&alice, &format!("REDACT #hikers {hi_all_id}"));
    wait_msg(&mut alice_in, "FAIL REDACT_FORBIDDEN", |m| {
        let line = m.to_string();
        line.contains("REDACT_FORBIDDEN") && line.contains("Only the author")
    })
    .await;
    // Alice deletes her own post for everyone; bob (no tags) sees a notice in the channel.
    // Until her daemon has stored the post (its hash names it in the group), the REDACT
    // answers a FAIL and is tried again.
    alice.send_privmsg("#hikers", "typo").expect("say");
    let echo = wait_msg(&mut alice_in, "her echo", |m| {
        privmsg(m) == Some(("#hikers", "typo"))
    })
    .await;
    let typo_id = tag(&echo, "msgid").expect("a msgid").to_owned();
    wait_privmsg(&mut bob_in, "typo").await;
    let until = Instant::now() + DEADLINE;
    loop {
        send_line(&alice, &format!("REDACT #hikers {typo_id}"));
        // A FAIL means "not stored yet": again; her own "unsent" notice means it went out.
        let answer = wait_msg(&mut alice_in, "a FAIL or the unsent notice", |m| {
            m.to_string().contains("FAIL REDACT")
                || notice(m).is_some_and(|(c, t)| c == "#hikers" && t.contains("unsent"))
        })
        .await;
        let fail = answer.to_string();
        if !fail.contains("FAIL REDACT") {
            break;
        }
        assert!(fail.contains("not reached"), "{fail}");
        assert!(
            Instant::now() < until,
            "alice's post never got its hash: {fail}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let gone = wait_msg(&mut bob_in, "the deletion notice", |m| {
        notice(m).is_some_and(|(c, t)| c == "#hikers" && t.contains("unsent"))
    })
    .await;
    assert_eq!(gone.source_nickname(), Some(alice_nick.as_str()));

    // Alice renames the group with TOPIC; bob sees the new topic.
    alice
        .send(Command::TOPIC(
            "#hikers".into(),
            Some("Mountaineers".into()),
        ))
        .expect("topic");
    flush(&mut alice_in).await;
    wait_msg(&mut bob_in, "the new topic", |m| {
        matches!(&m.command, Command::TOPIC(c, Some(t)) if c == "#hikers" && t.starts_with("Mountaineers"))
    })
    .await;

    // A bad channel is an error, not a crash.
    bob.send_privmsg("#nonesuch", "x").expect("say");
    wait_msg(&mut bob_in, "403", |m| m.to_string().contains(" 403 ")).await;

    // Alice kicks bob; bob sees his KICK.
    alice
        .send(Command::KICK("#hikers".into(), bob_nick.clone(), None))
        .expect("kick");
    flush(&mut alice_in).await;
    wait_msg(
        &mut bob_in,
        "bob's KICK",
        |m| matches!(&m.command, Command::KICK(c, n, _) if c == "#hikers" && n == "bob"),
    )
    .await;
}

/// The value of tag `key` in a raw line, if it has one.
fn raw_tag(line: &str, key: &str) -> Option<String> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    tags.split(';').find_map(|t| {
        let (k, v) = t.split_once('=').unwrap_or((t, ""));
        (k == key).then(|| v.to_owned())
    })
}

/// The API client of one side's identity.
fn api(s: &Side) -> sessiond_api::client::Client {
    sessiond_api::client::Client::new(s.channel.clone(), &s.token).expect("a token")
}

/// Polls `side`'s log until `want` holds for one of its events.
async fn event_until(
    s: &Side,
    name: &str,
    what: &str,
    want: impl Fn(&event::Kind) -> bool,
) -> sessiond_api::v1::Event {
    let client = api(s);
    let until = Instant::now() + DEADLINE;
    loop {
        let events = client
            .messages
            .clone()
            .list_events(ListEventsRequest {
                identity: name.into(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("history")
            .into_inner()
            .events;
        if let Some(e) = events
            .into_iter()
            .find(|e| e.kind.as_ref().is_some_and(&want))
        {
            return e;
        }
        assert!(Instant::now() < until, "{name} never got {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_reactions_unsend_read_marks_and_timers_on_irc_with_and_without_caps() {
    use sessiond_api::v1::{
        DeliveryState, MessageRef, ReactRequest, SendMessageRequest, UnsendRequest,
    };
    let devnet = Devnet::start(DevnetConfig {
        nodes: 9,
        swarm_size: 3,
        relay_timeout: Duration::from_secs(2),
        replication_timeout: Duration::from_secs(2),
        ..DevnetConfig::default()
    })
    .await
    .expect("devnet starts");
    let dir = TempDir::new("irc-inter");
    std::fs::create_dir_all(dir.path()).expect("temp dir");
    let manifest = dir.path().join("devnet.json");
    devnet.write_manifest(&manifest).expect("manifest");
    let config = dir.path().join("sessiond.toml");
    std::fs::write(&config, CONFIG).expect("config");
    let a = side(&dir, &manifest, &config, "alice").await;
    let b = side(&dir, &manifest, &config, "bob").await;
    let alice_nick = format!("s{}", &a.account[2..10]);
    let bob_nick = format!("s{}", &b.account[2..10]);
    // Alice's client has the capabilities, bob's has none.
    let mut alice = Raw::register(
        &a.irc,
        &a.token,
        "alice",
        "message-tags echo-message draft/message-redaction draft/read-marker",
    )
    .await;
    let mut bob = Raw::register(&b.irc, &b.token, "bob", "").await;

    alice
        .send(&format!("PRIVMSG {} :hello bob", b.account))
        .await;
    let echo = alice.wait_for("hello bob").await;
    let hello_id = raw_tag(&echo, "msgid").expect("a msgid");
    bob.wait_for("hello bob").await;
    bob.send(&format!("PRIVMSG {alice_nick} :hi alice")).await;
    let hi = alice.wait_for("hi alice").await;
    let hi_id = raw_tag(&hi, "msgid").expect("a msgid");

    // A reply from the client with tags; the client without them sees the quote as text.
    alice
        .send(&format!(
            "@+draft/reply={hi_id} PRIVMSG {bob_nick} :right back"
        ))
        .await;
    let quoted = bob.wait_for("right back").await;
    assert!(quoted.contains("[re bob: hi alice] right back"), "{quoted}");
    // A reply from the other side (through its API) arrives with +draft/reply.
    let hello_event = event_until(
        &b,
        "bob",
        "hello",
        |k| matches!(k, event::Kind::Incoming(m) if m.text == "hello bob"),
    )
    .await;
    let Some(event::Kind::Incoming(hello_in)) = hello_event.kind else {
        unreachable!()
    };
    api(&b)
        .messages
        .clone()
        .send_message(SendMessageRequest {
            identity: "bob".into(),
            recipient: a.account.clone(),
            text: "quoting you".into(),
            reply_to: Some(MessageRef {
                sent_at_ms: hello_in.sent_at_ms,
                author: a.account.clone(),
            }),
            ..Default::default()
        })
        .await
        .expect("reply");
    let got = event_until(
        &a,
        "alice",
        "the reply",
        |k| matches!(k, event::Kind::Incoming(m) if m.text == "quoting you"),
    )
    .await;
    assert_eq!(
        got.kind.and_then(|k| match k {
            event::Kind::Incoming(m) => m.reply_to.map(|r| r.excerpt),
            _ => None,
        }),
        Some("hello bob".to_owned())
    );
    let reply = alice.wait_for("quoting you").await;
    assert_eq!(
        raw_tag(&reply, "+draft/reply"),
        Some(hello_id.clone()),
        "{reply}"
    );

    // Reactions: alice's TAGMSG reaches bob as a notice; bob's (API) reaches alice as a TAGMSG.
    alice
        .send(&format!(
            "@+draft/react=👍;+draft/reply={hi_id} TAGMSG {bob_nick}"
        ))
        .await;
    let n = bob.wait_for("reacted 👍").await;
    assert!(n.contains(&format!(":{alice_nick}!")), "{n}");
    alice
        .send(&format!(
            "@+draft/unreact=👍;+draft/reply={hi_id} TAGMSG {bob_nick}"
        ))
        .await;
    bob.wait_for("removed 👍").await;
    api(&b)
        .interactions
        .clone()
        .react(ReactRequest {
            identity: "bob".into(),
            conversation: a.account.clone(),
            target: Some(MessageRef {
                sent_at_ms: hello_in.sent_at_ms,
                author: a.account.clone(),
            }),
            emoji: "🎉".into(),
            remove: false,
        })
        .await
        .expect("react");
    let r = alice.wait_for("+draft/react=🎉").await;
    assert!(
        r.contains(" TAGMSG alice") && r.contains(&format!("+draft/reply={hello_id}")),
        "{r}"
    );

    // Unsend: only the author; REDACT for the client with the capability, a notice without.
    alice.send(&format!("REDACT {bob_nick} {hi_id}")).await;
    alice.wait_for("FAIL REDACT REDACT_FORBIDDEN").await;
    alice.send(&format!("PRIVMSG {bob_nick} :oops")).await;
    let oops = alice.wait_for(&format!("PRIVMSG {bob_nick} oops")).await;
    let oops_id = raw_tag(&oops, "msgid").expect("a msgid");
    bob.wait_for("oops").await;
    alice.send(&format!("REDACT {bob_nick} {oops_id}")).await;
    alice
        .wait_for(&format!("REDACT {bob_nick} {oops_id}"))
        .await;
    bob.wait_for("unsent]").await;
    bob.send(&format!("PRIVMSG {alice_nick} :my oops")).await;
    let mine = alice.wait_for("my oops").await;
    let mine_id = raw_tag(&mine, "msgid").expect("a msgid");
    let bob_oops = event_until(
        &b,
        "bob",
        "my oops",
        |k| matches!(k, event::Kind::Outgoing(m) if m.text == "my oops"),
    )
    .await;
    let Some(event::Kind::Outgoing(bob_oops)) = bob_oops.kind else {
        unreachable!()
    };
    api(&b)
        .interactions
        .clone()
        .unsend(UnsendRequest {
            identity: "bob".into(),
            conversation: a.account.clone(),
            sent_at_ms: bob_oops.sent_at_ms,
        })
        .await
        .expect("unsend");
    alice
        .wait_for(&format!("REDACT alice {mine_id} unsent"))
        .await;

    // Read marks both ways: alice's MARKREAD is answered with the mark and reaches bob as a
    // read receipt.
    alice
        .send(&format!(
            "MARKREAD {bob_nick} timestamp=2030-01-01T00:00:00.000Z"
        ))
        .await;
    alice
        .wait_for(&format!("MARKREAD {bob_nick} timestamp="))
        .await;
    let hi_out = event_until(
        &b,
        "bob",
        "hi alice",
        |k| matches!(k, event::Kind::Outgoing(m) if m.text == "hi alice"),
    )
    .await;
    let Some(event::Kind::Outgoing(hi_out)) = hi_out.kind else {
        unreachable!()
    };
    event_until(&b, "bob", "a read receipt", |k| matches!(k, event::Kind::Delivery(d) if d.message_id == hi_out.message_id && d.state == DeliveryState::Read as i32)).await;

    // A 10-second timer set from &session: both sides are told, the message goes after it.
    alice
        .send(&format!("PRIVMSG &session :disappear {bob_nick} 10s"))
        .await;
    alice.wait_for("Disappearing messages with").await;
    bob.wait_for("[disappearing messages: 10 s after sending]")
        .await;
    alice.send(&format!("PRIVMSG {bob_nick} :secret")).await;
    let secret = alice.wait_for(&format!("PRIVMSG {bob_nick} secret")).await;
    let secret_id = raw_tag(&secret, "msgid").expect("a msgid");
    bob.wait_for("secret").await;
    alice
        .wait_for(&format!("REDACT {bob_nick} {secret_id} disappeared"))
        .await;
    bob.wait_for("disappeared]").await;
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// The link at the end of a `[file]` line, fetched from the daemon that shows it.
async fn fetch_link(http: &str, line: &str) -> support::HttpReply {
    let link = line
        .split(' ')
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("a link in {line:?}"));
    let path = link
        .strip_prefix(&format!("http://{http}"))
        .unwrap_or_else(|| panic!("{link} is on the daemon's HTTP listener {http}"));
    support::http_request(http, "GET", path, &[], "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_files_go_out_by_filehost_link_and_send_file_and_arrive_as_links() {
    use base64::Engine as _;
    let net = support::net_with_files("irc-files", CONFIG).await;
    let a = side(&net.dir, &net.manifest, &net.config, "alice").await;
    let b = side(&net.dir, &net.manifest, &net.config, "bob").await;
    let (http_a, http_b) = (
        a.daemon.http.clone().expect("HTTP listener"),
        b.daemon.http.clone().expect("HTTP listener"),
    );
    let mut alice = Raw::register(&a.irc, &a.token, "alice", "").await;
    let mut bob = Raw::register(&b.irc, &b.token, "bob", "").await;

    // FILEHOST names the daemon's upload endpoint.
    let filehost = alice
        .seen
        .iter()
        .find_map(|l| {
            l.split(' ')
                .find_map(|w| w.strip_prefix("soju.im/FILEHOST="))
        })
        .map(str::to_owned)
        .expect("soju.im/FILEHOST in ISUPPORT");
    assert_eq!(filehost, format!("http://{http_a}/upload"));
    assert!(alice.seen.iter().any(|l| l.contains("draft/FILEHOST=")));

    // Upload as an IRC client does (its credentials as Basic auth), then the link in a PRIVMSG.
    let mut image = hex::decode("89504e470d0a1a0a").expect("hex");
    image.extend(noise(20_000, 5));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{}", a.token));
    let auth = format!("Basic {basic}");
    let up = support::http_request_bytes(
        &http_a,
        "POST",
        "/upload",
        &[
            ("authorization", auth.as_str()),
            ("content-type", "image/png"),
            ("content-disposition", "attachment; filename=\"cat.png\""),
        ],
        image.clone(),
    )
    .await;
    assert_eq!(up.status, 201, "{}", up.text());
    let link = up.header("location").expect("Location");
    // Wrong credentials upload nothing.
    let wrong = base64::engine::general_purpose::STANDARD.encode("alice:not-a-token");
    let refused = support::http_request_bytes(
        &http_a,
        "POST",
        "/upload",
        &[("authorization", format!("Basic {wrong}").as_str())],
        vec![1, 2, 3],
    )
    .await;
    assert_eq!(refused.status, 401);

    alice
        .send(&format!("PRIVMSG {} :look {link}", b.account))
        .await;
    let line = bob.wait_for("[file] cat.png").await;
    assert!(line.contains("image/png"), "{line}");
    let got = fetch_link(&http_b, &line).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(
        sha256(&got.body),
        sha256(&image),
        "the image arrives byte-identical"
    );

    // send-file: a 5 MB file on the host, admin token only.
    let big = noise(5_000_000, 9);
    let path = net.dir.path().join("report.bin");
    std::fs::write(&path, &big).expect("write the file");
    alice
        .send(&format!(
            "PRIVMSG &session :send-file {} {}",
            b.account,
            path.display()
        ))
        .await;
    alice.wait_for("admin token").await;
    let pass = format!("alice:{}", a.daemon.admin_token);
    let mut admin = Raw::register(&a.irc, &pass, "alice2", "").await;
    admin
        .send(&format!(
            "PRIVMSG &session :send-file {} {}",
            b.account,
            path.display()
        ))
        .await;
    admin.wait_for("Sent ").await;
    let line = bob.wait_for("[file] report.bin").await;
    assert!(line.contains("5.0 MB"), "{line}");
    let got = fetch_link(&http_b, &line).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(
        sha256(&got.body),
        sha256(&big),
        "the 5 MB file arrives byte-identical"
    );
}

/// [`CONFIG`] with community servers polled every 200 ms.
const COMMUNITY_CONFIG: &str = r#"
[poll]
active_interval_ms = 150
idle_interval_ms = 400
idle_after_secs = 5
community_interval_ms = 200

[outbox]
max_attempts = 30
backoff_initial_ms = 100
backoff_max_ms = 500
"#;

/// A devnet whose community server has `lobby` (open) and `news` (read-only), its manifest and
/// a config polling rooms fast, in `dir`.
async fn community_devnet(dir: &TempDir) -> (Devnet, std::path::PathBuf, std::path::PathBuf) {
    use session_devnet::{CommunityConfig, RoomSpec};
    let devnet = Devnet::start(DevnetConfig {
        nodes: 9,
        swarm_size: 3,
        relay_timeout: Duration::from_secs(2),
        replication_timeout: Duration::from_secs(2),
        community: Some(CommunityConfig {
            rooms: vec![
                RoomSpec::new("lobby", "Lobby").describe("Say hello"),
                RoomSpec::new("news", "News").read_only(),
            ],
            ..Default::default()
        }),
        ..DevnetConfig::default()
    })
    .await
    .expect("devnet starts");
    std::fs::create_dir_all(dir.path()).expect("temp dir");
    let manifest = dir.path().join("devnet.json");
    devnet.write_manifest(&manifest).expect("manifest");
    let config = dir.path().join("sessiond.toml");
    std::fs::write(&config, COMMUNITY_CONFIG).expect("config");
    (devnet, manifest, config)
}

/// The text of a NOTICE, if `m` is one.
fn notice(m: &Message) -> Option<(&str, &str)> {
    match &m.command {
        Command::NOTICE(target, text) => Some((target.as_str(), text.as_str())),
        _ => None,
    }
}

/// Sends a raw line through an `irc` crate client (for tags and commands it has no helper for).
fn send_line(c: &Client, line: &str) {
    c.send(line.parse::<Message>().expect("a valid line"))
        .expect("send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn community_rooms_are_channels_chat_react_delete_dm_read_only_and_outage() {
    let dir = TempDir::new("irc-rooms");
    let (devnet, manifest, config) = community_devnet(&dir).await;
    let server = devnet.community().expect("a community server");
    let lobby_url = server.room_url("lobby").to_string();
    let news_url = server.room_url("news").to_string();
    let a = side(&dir, &manifest, &config, "alice").await;
    let b = side(&dir, &manifest, &config, "bob").await;
    // Alice's client has the IRCv3 caps; bob's has none (the fallbacks).
    let caps = [
        Capability::EchoMessage,
        Capability::ServerTime,
        Capability::Batch,
        Capability::Custom("message-tags"),
        Capability::Custom("draft/message-redaction"),
    ];
    let (alice, mut alice_in) = connect(&a.irc, &a.token, "alice", &caps).await;
    let (bob, mut bob_in) = connect(&b.irc, &b.token, "bob", &[]).await;
    for s in [&mut alice_in, &mut bob_in] {
        wait_msg(s, "the end of the welcome", |m| {
            m.to_string().contains(" 366 ")
        })
        .await;
    }

    // Bad joins first: a URL without its key, an unknown room, a name without '#'.
    let base = server.url().to_string();
    alice
        .send(Command::JOIN(
            "#lobby".into(),
            Some(format!("{base}/lobby")),
            None,
        ))
        .expect("join");
    let bad = wait_msg(&mut alice_in, "476 for a URL without key", |m| {
        m.to_string().contains(" 476 ")
    })
    .await;
    assert!(bad.to_string().contains("public_key"), "{bad}");
    alice
        .send(Command::JOIN(
            server.room_url("nosuchroom").to_string(),
            None,
            None,
        ))
        .expect("join");
    let missing = wait_msg(&mut alice_in, "403 for an unknown room", |m| {
        m.to_string().contains(" 403 ")
    })
    .await;
    assert!(missing.to_string().contains("No such room"), "{missing}");

    // Alice joins with the URL as the channel key; bob through &session.
    alice
        .send(Command::JOIN(
            "#lobby".into(),
            Some(lobby_url.clone()),
            None,
        ))
        .expect("join");
    wait_msg(
        &mut alice_in,
        "alice's JOIN",
        |m| matches!(&m.command, Command::JOIN(c, _, _) if c == "#lobby"),
    )
    .await;
    let topic = wait_msg(&mut alice_in, "the topic", |m| {
        m.to_string().contains(" 332 ")
    })
    .await;
    let topic = topic.to_string();
    assert!(
        topic.contains("Lobby — Say hello") && topic.contains(&lobby_url),
        "{topic}"
    );
    bob.send_privmsg("&session", format!("rooms join {lobby_url}"))
        .expect("rooms join");
    wait_msg(
        &mut bob_in,
        "bob's JOIN",
        |m| matches!(&m.command, Command::JOIN(c, _, _) if c == "#lobby"),
    )
    .await;
    wait_msg(&mut bob_in, "root's answer", |m| {
        privmsg(m).is_some_and(|(_, t)| t.starts_with("Joined Lobby as #lobby"))
    })
    .await;

    // Chat: alice's post is echoed to her with a msgid; bob sees a JOIN from her poster nick,
    // then the post.
    alice.send_privmsg("#lobby", "hello room").expect("say");
    let echo = wait_msg(&mut alice_in, "alice's echo", |m| {
        privmsg(m) == Some(("#lobby", "hello room"))
    })
    .await;
    let hello_id = tag(&echo, "msgid").expect("a msgid").to_owned();
    let post = wait_msg(&mut bob_in, "alice's post", |m| {
        privmsg(m) == Some(("#lobby", "hello room"))
    })
    .await;
    let alice_as_poster = post.source_nickname().expect("a nick").to_owned();
    assert_ne!(alice_as_poster, "bob");
    bob.send_privmsg("#lobby", "hi alice").expect("say");
    flush(&mut bob_in).await;
    let hi = wait_msg(&mut alice_in, "bob's post", |m| {
        privmsg(m) == Some(("#lobby", "hi alice"))
    })
    .await;
    let bob_as_poster = hi.source_nickname().expect("a nick").to_owned();
    let hi_id = tag(&hi, "msgid").expect("a msgid").to_owned();
    // NAMES lists the posters; WHOIS shows bob's blinded ID.
    alice
        .send(Command::NAMES(Some("#lobby".into()), None))
        .expect("names");
    let names = wait_msg(&mut alice_in, "353", |m| m.to_string().contains(" 353 ")).await;
    assert!(names.to_string().contains(&bob_as_poster), "{names}");
    alice
        .send(Command::WHOIS(None, bob_as_poster.clone()))
        .expect("whois");
    let whois = wait_msg(&mut alice_in, "330", |m| m.to_string().contains(" 330 ")).await;
    assert!(whois.to_string().contains(" 15"), "{whois}");

    // Alice reacts to bob's post: bob (no tags) gets a notice with the count; alice sees her
    // own reaction as a TAGMSG.
    send_line(
        &alice,
        &format!("@+draft/react=👍;+draft/reply={hi_id} TAGMSG #lobby"),
    );
    wait_msg(&mut alice_in, "alice's own reaction", |m| {
        m.to_string().contains("TAGMSG #lobby")
            && tag(m, "+draft/react") == Some("👍")
            && tag(m, "+draft/reply") == Some(hi_id.as_str())
    })
    .await;
    wait_msg(&mut bob_in, "the reaction notice", |m| {
        notice(m).is_some_and(|(c, t)| {
            c == "#lobby" && t.contains("reactions to your message") && t.contains("👍 1")
        })
    })
    .await;
    // A reaction to an unknown msgid is a FAIL, not a crash.
    send_line(&alice, "@+draft/react=👍;+draft/reply=999999 TAGMSG #lobby");
    wait_msg(&mut alice_in, "FAIL UNKNOWN_MSGID", |m| {
        m.to_string().contains("UNKNOWN_MSGID")
    })
    .await;

    // Deletions: alice may not delete bob's post; she deletes her own, which bob sees as a
    // notice and she as a REDACT.
    send_line(&alice, &format!("REDACT #lobby {hi_id}"));
    wait_msg(&mut alice_in, "REDACT_FORBIDDEN", |m| {
        m.to_string().contains("REDACT_FORBIDDEN")
    })
    .await;
    send_line(&alice, &format!("REDACT #lobby {hello_id}"));
    wait_msg(&mut alice_in, "the REDACT", |m| {
        m.to_string().contains(&format!("REDACT #lobby {hello_id}"))
    })
    .await;
    wait_msg(&mut bob_in, "the deletion notice", |m| {
        notice(m).is_some_and(|(c, t)| {
            c == "#lobby" && t.contains("deleted") && t.contains("hello room")
        })
    })
    .await;

    // A community DM: bob writes to alice's poster nick; it arrives as a private message, and
    // her answer comes back the same way.
    bob.send_privmsg(&alice_as_poster, "psst").expect("dm");
    flush(&mut bob_in).await;
    let dm = wait_msg(&mut alice_in, "bob's DM", |m| {
        privmsg(m).is_some_and(|(t, x)| t == "alice" && x == "psst")
    })
    .await;
    let bob_dm_nick = dm.source_nickname().expect("a nick").to_owned();
    alice.send_privmsg(&bob_dm_nick, "psst back").expect("dm");
    flush(&mut alice_in).await;
    let back = wait_msg(&mut bob_in, "alice's DM", |m| {
        privmsg(m).is_some_and(|(t, x)| t == "bob" && x == "psst back")
    })
    .await;
    assert_eq!(back.source_nickname(), Some(alice_as_poster.as_str()));

    // A read-only room: +m, and PRIVMSG answers 404 saying why.
    alice
        .send(Command::JOIN("#news".into(), Some(news_url), None))
        .expect("join");
    wait_msg(
        &mut alice_in,
        "JOIN #news",
        |m| matches!(&m.command, Command::JOIN(c, _, _) if c == "#news"),
    )
    .await;
    alice
        .send(Command::ChannelMODE("#news".into(), vec![]))
        .expect("mode");
    let mode = wait_msg(&mut alice_in, "324", |m| m.to_string().contains(" 324 ")).await;
    assert!(mode.to_string().contains("+mnt"), "{mode}");
    alice.send_privmsg("#news", "may I?").expect("say");
    let refused = wait_msg(&mut alice_in, "404", |m| m.to_string().contains(" 404 ")).await;
    assert!(refused.to_string().contains("read-only"), "{refused}");

    // The server goes down and comes back: nothing posted is lost, nothing arrives twice.
    bob.send_privmsg("#lobby", "before the outage")
        .expect("say");
    flush(&mut bob_in).await;
    wait_privmsg(&mut alice_in, "before the outage").await;
    server.stop().await;
    let rooms = api(&a);
    let until = Instant::now() + DEADLINE;
    loop {
        let room = rooms
            .communities
            .clone()
            .get_room(sessiond_api::v1::GetRoomRequest {
                identity: "alice".into(),
                room_id: format!("{base}/lobby"),
            })
            .await
            .expect("get room")
            .into_inner()
            .room
            .expect("room");
        if !room.last_error.is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "no poll failed while the server was down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bob.send_privmsg("#lobby", "into the void").expect("say");
    let lost = wait_msg(&mut bob_in, "the refusal", |m| {
        notice(m).is_some_and(|(_, t)| t.contains("#lobby"))
    })
    .await;
    assert!(lost.to_string().contains("cannot"), "{lost}");
    server.restart().await.expect("restart");
    for i in 0..3 {
        bob.send_privmsg("#lobby", format!("after {i}"))
            .expect("say");
        flush(&mut bob_in).await;
    }
    let mut got = Vec::new();
    let until = Instant::now() + DEADLINE;
    while got.len() < 3 {
        let m = wait_msg(&mut alice_in, "posts after the outage", |m| {
            privmsg(m).is_some_and(|(c, _)| c == "#lobby")
        })
        .await;
        got.push(privmsg(&m).map(|p| p.1.to_owned()).unwrap_or_default());
        assert!(Instant::now() < until);
    }
    assert_eq!(got, ["after 0", "after 1", "after 2"]);

    // Leaving: PART, and the room is gone from the list.
    alice.send_part("#lobby").expect("part");
    wait_msg(
        &mut alice_in,
        "PART",
        |m| matches!(&m.command, Command::PART(c, _) if c == "#lobby"),
    )
    .await;
    alice.send_privmsg("&session", "rooms list").expect("list");
    let listed = wait_msg(&mut alice_in, "the list", |m| {
        privmsg(m).is_some_and(|(_, t)| t.contains("community rooms"))
    })
    .await;
    assert!(listed.to_string().contains("1 community rooms"), "{listed}");
    a.daemon.terminate();
    b.daemon.terminate();
    devnet.shutdown().await;
}

/// Sends `line` from `from` until `to` shows a message `want` holds for (a member's daemon may
/// need a poll or two before it can act: read the group's keys, learn its promotion).
async fn retry_until(
    from: &Client,
    from_in: &mut ClientStream,
    line: &str,
    to: &mut ClientStream,
    what: &str,
    want: impl Fn(&Message) -> bool,
) -> Message {
    let until = Instant::now() + DEADLINE;
    loop {
        send_line(from, line);
        flush(from_in).await;
        let got = tokio::time::timeout(Duration::from_secs(3), async {
            wait_msg(to, what, &want).await
        })
        .await;
        if let Ok(m) = got {
            return m;
        }
        assert!(Instant::now() < until, "never saw {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_groups_scenario_from_irc_invite_history_kick_op_rename() {
    let devnet = Devnet::start(DevnetConfig {
        nodes: 9,
        swarm_size: 3,
        relay_timeout: Duration::from_secs(2),
        replication_timeout: Duration::from_secs(2),
        ..DevnetConfig::default()
    })
    .await
    .expect("devnet starts");
    let dir = TempDir::new("irc-groups3");
    std::fs::create_dir_all(dir.path()).expect("temp dir");
    let manifest = dir.path().join("devnet.json");
    devnet.write_manifest(&manifest).expect("manifest");
    let config = dir.path().join("sessiond.toml");
    std::fs::write(&config, CONFIG).expect("config");
    let a = side(&dir, &manifest, &config, "alice").await;
    let b = side(&dir, &manifest, &config, "bob").await;
    let c = side(&dir, &manifest, &config, "carol").await;
    let caps = [
        Capability::Batch,
        Capability::ServerTime,
        Capability::Custom("message-tags"),
        Capability::Custom("draft/chathistory"),
    ];
    let (alice, mut alice_in) = connect(&a.irc, &a.token, "alice", &[]).await;
    let (bob, mut bob_in) = connect(&b.irc, &b.token, "bob", &[]).await;
    let (carol, mut carol_in) = connect(&c.irc, &c.token, "carol", &caps).await;
    for s in [&mut alice_in, &mut bob_in, &mut carol_in] {
        wait_msg(s, "the end of the welcome", |m| {
            m.to_string().contains(" 366 ")
        })
        .await;
    }
    // Alice names her contacts, then creates the group from &session, inviting bob.
    for (account, nick) in [(&b.account, "bob"), (&c.account, "carol")] {
        alice
            .send_privmsg("&session", format!("contacts add {account} {nick}"))
            .expect("contacts add");
        wait_msg(&mut alice_in, "added", |m| {
            privmsg(m).is_some_and(|(_, t)| t.starts_with(&format!("Added {nick}")))
        })
        .await;
    }
    alice
        .send_privmsg("&session", "groups create \"Hikers Club\" bob")
        .expect("groups create");
    wait_msg(
        &mut alice_in,
        "alice's JOIN",
        |m| matches!(&m.command, Command::JOIN(c, _, _) if c == "#hikers-club"),
    )
    .await;
    wait_msg(&mut alice_in, "root's answer", |m| {
        privmsg(m)
            .is_some_and(|(_, t)| t.starts_with("Created the group Hikers Club (#hikers-club, 03"))
    })
    .await;

    // Bob is invited and accepts with JOIN, then posts (retrying until his daemon has the keys).
    wait_msg(
        &mut bob_in,
        "the INVITE",
        |m| matches!(&m.command, Command::INVITE(_, c) if c == "#hikers-club"),
    )
    .await;
    bob.send_join("#hikers-club").expect("join");
    wait_msg(
        &mut bob_in,
        "bob's JOIN",
        |m| matches!(&m.command, Command::JOIN(c, _, _) if c == "#hikers-club"),
    )
    .await;
    let hi = retry_until(
        &bob,
        &mut bob_in,
        "PRIVMSG #hikers-club :hi all",
        &mut alice_in,
        "bob's post",
        |m| privmsg(m) == Some(("#hikers-club", "hi all")),
    )
    .await;
    assert_eq!(hi.source_nickname(), Some("bob"));
    alice
        .send_privmsg("#hikers-club", "welcome bob")
        .expect("say");
    flush(&mut alice_in).await;
    wait_privmsg(&mut bob_in, "welcome bob").await;

    // Alice adds carol (with the history): carol accepts and sees the earlier messages, live
    // and again through CHATHISTORY.
    alice
        .send(Command::INVITE("carol".into(), "#hikers-club".into()))
        .expect("invite");
    wait_msg(&mut alice_in, "341", |m| m.to_string().contains(" 341 ")).await;
    wait_msg(
        &mut carol_in,
        "carol's INVITE",
        |m| matches!(&m.command, Command::INVITE(_, c) if c == "#hikers-club"),
    )
    .await;
    carol.send_join("#hikers-club").expect("join");
    wait_msg(
        &mut carol_in,
        "carol's JOIN",
        |m| matches!(&m.command, Command::JOIN(c, _, _) if c == "#hikers-club"),
    )
    .await;
    let mut earlier = Vec::new();
    while earlier.len() < 2 {
        let m = wait_msg(&mut carol_in, "the earlier messages", |m| {
            privmsg(m).is_some_and(|(c, _)| c == "#hikers-club")
        })
        .await;
        earlier.push(privmsg(&m).map(|p| p.1.to_owned()).unwrap_or_default());
    }
    assert_eq!(earlier, ["hi all", "welcome bob"]);
    send_line(&carol, "CHATHISTORY LATEST #hikers-club * 10");
    let mut batch = Vec::new();
    loop {
        let m = wait_msg(&mut carol_in, "the history batch", |m| {
            m.to_string().contains("BATCH ") || privmsg(m).is_some()
        })
        .await;
        let line = m.to_string();
        if line.contains("BATCH -") {
            break;
        }
        if let Some((_, t)) = privmsg(&m) {
            batch.push(t.to_owned());
        }
    }
    assert_eq!(batch, ["hi all", "welcome bob"]);

    // Alice kicks bob: bob sees his KICK and no longer gets the group's messages.
    alice
        .send(Command::KICK("#hikers-club".into(), "bob".into(), None))
        .expect("kick");
    flush(&mut alice_in).await;
    wait_msg(
        &mut bob_in,
        "bob's KICK",
        |m| matches!(&m.command, Command::KICK(c, n, _) if c == "#hikers-club" && n == "bob"),
    )
    .await;
    alice
        .send_privmsg("#hikers-club", "bob is gone")
        .expect("say");
    flush(&mut alice_in).await;
    wait_privmsg(&mut carol_in, "bob is gone").await;
    let until = Instant::now() + Duration::from_secs(3);
    while let Ok(Some(Ok(m))) = tokio::time::timeout(
        until.saturating_duration_since(Instant::now()),
        bob_in.next(),
    )
    .await
    {
        assert_ne!(
            privmsg(&m).map(|p| p.1),
            Some("bob is gone"),
            "bob still reads the group"
        );
    }

    // Alice makes carol an admin (MODE +o); carol renames the group with TOPIC, which everyone
    // sees as the new topic (the channel keeps its name).
    alice
        .send(Command::ChannelMODE(
            "#hikers-club".into(),
            vec![irc::client::prelude::Mode::Plus(
                irc::client::prelude::ChannelMode::Oper,
                Some("carol".into()),
            )],
        ))
        .expect("mode");
    flush(&mut alice_in).await;
    wait_msg(&mut carol_in, "carol's +o", |m| {
        let l = m.to_string();
        l.contains("MODE #hikers-club +o carol")
    })
    .await;
    let renamed = retry_until(
        &carol,
        &mut carol_in,
        "TOPIC #hikers-club :Mountaineers",
        &mut alice_in,
        "the new topic",
        |m| matches!(&m.command, Command::TOPIC(c, Some(t)) if c == "#hikers-club" && t.starts_with("Mountaineers")),
    )
    .await;
    assert!(renamed.to_string().contains("03"), "{renamed}");
    drop((a.daemon, b.daemon, c.daemon));
    devnet.shutdown().await;
}

/// A browser IRC client (gamja and the like) on another origin uploads through FILEHOST: the
/// preflight names what it may send, the upload's answer and the link can be read by its
/// script, and without the token nothing is uploaded. HEAD and GET both serve the link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_client_on_another_origin_uploads_with_its_token_and_reads_the_link() {
    use base64::Engine as _;
    let net = support::net_with_files("irc-cors", CONFIG).await;
    let a = side(&net.dir, &net.manifest, &net.config, "alice").await;
    let http = a.daemon.http.clone().expect("HTTP listener");
    let origin = ("origin", "https://web.example.org");

    // The preflight a browser sends before a POST carrying Authorization.
    let pre = support::http_request(
        &http,
        "OPTIONS",
        "/upload",
        &[
            origin,
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization,content-type,content-disposition",
            ),
        ],
        "",
    )
    .await;
    assert!(pre.status == 204 || pre.status == 200, "{}", pre.status);
    assert_eq!(
        pre.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    let methods = pre
        .header("access-control-allow-methods")
        .unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");
    let allowed = pre
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in ["authorization", "content-type", "content-disposition"] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }
    assert!(pre.header("access-control-allow-credentials").is_none());

    // Without the token: refused, and the refusal is readable by the page.
    let refused =
        support::http_request_bytes(&http, "POST", "/upload", &[origin], vec![1, 2, 3]).await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("access-control-allow-origin").as_deref(),
        Some("*")
    );

    // With it: 201, and the script may read Location.
    let data = noise(30_000, 11);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{}", a.token));
    let auth = format!("Basic {basic}");
    let up = support::http_request_bytes(
        &http,
        "POST",
        "/upload",
        &[
            origin,
            ("authorization", auth.as_str()),
            ("content-type", "text/plain"),
            ("content-disposition", "attachment; filename=\"notes.txt\""),
        ],
        data.clone(),
    )
    .await;
    assert_eq!(up.status, 201, "{}", up.text());
    assert_eq!(
        up.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    let exposed = up
        .header("access-control-expose-headers")
        .unwrap_or_default();
    assert!(exposed.contains("Location"), "{exposed}");
    let link = up.header("location").expect("Location");
    let path = link
        .strip_prefix(&format!("http://{http}"))
        .expect("a link on the daemon's HTTP listener");

    // FILEHOST: HEAD and GET on the link.
    let head = support::http_request(&http, "HEAD", path, &[origin], "").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length").as_deref(),
        Some(data.len().to_string().as_str())
    );
    let got = support::http_request(&http, "GET", path, &[origin], "").await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(sha256(&got.body), sha256(&data));
}
