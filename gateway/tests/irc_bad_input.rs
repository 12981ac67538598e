//! The IRC adapter against a real (offline) daemon, fed every kind of bad input over raw TCP:
//! over-long lines, bad UTF-8, missing parameters, unknown commands, commands before
//! registration, CAP garbage, wrong credentials, a client that never reads, hundreds of
//! connections, a flood. Each gets its numeric or a clean disconnect, and a registered client on
//! the same daemon carries on working afterwards.

#[path = "support/daemon.rs"]
mod support;

#[path = "irc/common.rs"]
mod common;

use base64::Engine as _;
use common::{identity_with_token, some_account_id, Raw};
use support::{run_command, Daemon, TempDir};
use tokio::net::TcpSocket;

struct Setup {
    _dir: TempDir,
    daemon: Daemon,
    /// The daemon's own IRC server.
    addr: String,
    token: String,
}

/// An offline daemon with `irc_limits` in its `[irc]` section, and identity alice.
async fn setup(tag: &str, irc_limits: &str) -> Setup {
    let dir = TempDir::new(tag);
    std::fs::create_dir_all(dir.path()).expect("temp dir");
    let config = dir.path().join("sessiond.toml");
    std::fs::write(&config, format!("[irc]\n{irc_limits}\n")).expect("config");
    let data = dir.path().join("data");
    let mut cmd = run_command(&data);
    cmd.arg("--config").arg(&config);
    let daemon = tokio::task::spawn_blocking(move || Daemon::start_with(&data, cmd))
        .await
        .expect("start daemon");
    let channel = daemon.channel().await;
    let (_account, token) = identity_with_token(&channel, &daemon.admin_token, "alice").await;
    let addr = daemon.irc.clone().expect("the daemon runs its IRC server");
    Setup {
        _dir: dir,
        daemon,
        addr,
        token,
    }
}

/// Room for bursts of test traffic.
const GENEROUS: &str = "flood_burst = 10000\nflood_lines_per_sec = 10000";

const CAPS: &str = "echo-message server-time message-tags";

#[tokio::test]
async fn bad_lines_get_their_numerics_and_everyone_carries_on() {
    let s = setup("irc-bad", GENEROUS).await;
    let addr = s.addr.clone();
    let peer = some_account_id(7);
    let mut good = Raw::register(&addr, &s.token, "alice", CAPS).await;
    good.assert_alive(&peer, "start").await;
    let mut bad = Raw::register(&addr, &s.token, "alice2", CAPS).await;

    // A line over 512 bytes: refused whole with 417, not cut.
    bad.send(&format!("PRIVMSG {peer} :{}", "x".repeat(600)))
        .await;
    bad.wait_for(" 417 alice2 :Input line was too long").await;
    // Tags over 4094 bytes too.
    bad.send(&format!("@+a={} TAGMSG {peer}", "v".repeat(5000)))
        .await;
    bad.wait_for(" 417 alice2 ").await;
    bad.assert_alive(&peer, "bad-after-417").await;
    good.assert_alive(&peer, "417").await;

    // Bad UTF-8: a FAIL naming the command; nothing is sent.
    bad.send_bytes(format!("PRIVMSG {peer} :caf\u{e9}\r\n").as_bytes())
        .await;
    bad.wait_for("caf\u{e9}").await;
    bad.send_bytes(b"PRIVMSG alice :\xc3\x28 broken\r\n").await;
    bad.wait_for("FAIL PRIVMSG INVALID_UTF8 ").await;
    good.assert_alive(&peer, "utf8").await;

    // Missing parameters.
    bad.send("WHOIS").await;
    bad.wait_for(" 461 alice2 WHOIS :Not enough parameters")
        .await;
    bad.send("JOIN").await;
    bad.wait_for(" 461 alice2 JOIN :Not enough parameters")
        .await;
    bad.send("PRIVMSG").await;
    bad.wait_for(" 411 alice2 :No recipient given").await;
    bad.send(&format!("PRIVMSG {peer}")).await;
    bad.wait_for(" 412 alice2 :No text to send").await;
    bad.send("USER a b c :d").await;
    bad.wait_for(" 462 alice2 ").await;
    good.assert_alive(&peer, "461").await;

    // Unknown commands and targets.
    bad.send("FROBNICATE now").await;
    bad.wait_for(" 421 alice2 FROBNICATE :Unknown command")
        .await;
    bad.send("PRIVMSG nobody :hello?").await;
    bad.wait_for(" 401 alice2 nobody :No such nick").await;
    bad.send("JOIN #elsewhere").await;
    bad.wait_for(" 403 alice2 #elsewhere ").await;
    good.assert_alive(&peer, "421").await;

    // Commands before registration.
    let mut early = Raw::connect(&addr).await;
    early.send(&format!("PRIVMSG {peer} :too soon")).await;
    early.wait_for(" 451 * :You have not registered").await;
    early.send("JOIN &session").await;
    early.wait_for(" 451 * :You have not registered").await;
    early.send("WHOIS alice").await;
    early.wait_for(" 451 ").await;

    // CAP garbage.
    early.send("CAP FROB").await;
    early.wait_for(" 410 * FROB :Invalid CAP command").await;
    early.send("CAP REQ :echo-message no-such-cap").await;
    early.wait_for("CAP * NAK :echo-message no-such-cap").await;
    early.send("CAP REQ :sasl=PLAIN").await;
    let nak = early.wait_for("CAP * NAK").await;
    assert!(nak.ends_with("sasl=PLAIN"), "{nak}");
    early.send("CAP LS banana").await;
    early.wait_for("CAP * LS :").await;
    early.send("CAP LIST").await;
    let list = early.wait_for("CAP * LIST").await;
    assert!(
        !list.contains("echo-message"),
        "a NAKed REQ enables nothing: {list}"
    );
    early.send("CAP").await;
    early.wait_for(" 461 * CAP ").await;
    // After all that, it can still register.
    early.send("CAP END").await;
    early.send(&format!("PASS {}", s.token)).await;
    early.send("NICK early").await;
    early.send("USER early 0 * :Early").await;
    early.wait_for(" 001 early ").await;
    good.assert_alive(&peer, "cap").await;

    // Wrong credentials: the numeric, ERROR, disconnect.
    let mut wrong = Raw::connect(&addr).await;
    wrong.send(&format!("PASS {}", "0".repeat(64))).await;
    wrong.send("NICK wrong").await;
    wrong.send("USER wrong 0 * :Wrong").await;
    wrong
        .wait_for(" 464 wrong :Password incorrect: the token is not valid")
        .await;
    wrong.wait_for("ERROR :Closing link: Bad credentials").await;
    assert_eq!(wrong.line().await, None);
    // A wrong SASL password may be retried (sasl-3.1), a few times: then the link closes.
    let mut wrong = Raw::connect(&addr).await;
    wrong.send("CAP REQ :sasl").await;
    wrong.send("NICK wrong").await;
    wrong.send("USER wrong 0 * :Wrong").await;
    let creds = base64::engine::general_purpose::STANDARD.encode("\0alice\0not-a-token");
    for attempt in 0..3 {
        wrong.send("AUTHENTICATE PLAIN").await;
        wrong.wait_for("AUTHENTICATE +").await;
        wrong.send(&format!("AUTHENTICATE {creds}")).await;
        wrong
            .wait_for(" 904 wrong :SASL authentication failed: the token is not valid")
            .await;
        if attempt < 2 {
            wrong.send(&format!("PING :retry{attempt}")).await;
            wrong
                .wait_for(&format!("PONG sessiond retry{attempt}"))
                .await;
        }
    }
    wrong
        .wait_for("ERROR :Closing link: Too many failed SASL attempts")
        .await;
    assert_eq!(wrong.line().await, None);
    // The admin token without an identity name, and with one that does not exist.
    let mut admin = Raw::connect(&addr).await;
    admin.send(&format!("PASS {}", s.daemon.admin_token)).await;
    admin.send("NICK boss").await;
    admin.send("USER nosuchidentity 0 * :Boss").await;
    admin
        .wait_for(" 464 boss :Password incorrect: there is no identity named \"nosuchidentity\"")
        .await;
    assert!(admin.read_to_eof().await <= 1);
    good.assert_alive(&peer, "creds").await;

    // SASL PLAIN with the right token logs in (900, 903), then registration completes.
    let mut sasl = Raw::connect(&addr).await;
    sasl.send("CAP LS 302").await;
    sasl.send("CAP REQ :sasl").await;
    sasl.wait_for("CAP * ACK").await;
    sasl.send("NICK viasasl").await;
    sasl.send("USER viasasl 0 * :SASL").await;
    sasl.send("AUTHENTICATE PLAIN").await;
    sasl.wait_for("AUTHENTICATE +").await;
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0alice\0{}", s.token));
    sasl.send(&format!("AUTHENTICATE {creds}")).await;
    sasl.wait_for(" 900 viasasl viasasl!viasasl@sessiond alice :You are now logged in as alice")
        .await;
    sasl.wait_for(" 903 viasasl :SASL authentication successful")
        .await;
    sasl.send("CAP END").await;
    sasl.wait_for(" 001 viasasl ").await;

    // The admin token with an identity name works, by USER or by PASS name:token.
    let mut admin = Raw::connect(&addr).await;
    admin
        .send(&format!("PASS alice:{}", s.daemon.admin_token))
        .await;
    admin.send("NICK boss").await;
    admin.send("USER whatever 0 * :Boss").await;
    admin.wait_for(" 001 boss ").await;
    bad.assert_alive(&peer, "end-bad").await;
    good.assert_alive(&peer, "good-end").await;
    let status = tokio::task::spawn_blocking(move || s.daemon.terminate())
        .await
        .expect("terminate");
    assert!(status.success(), "{status:?}");
    // The shutdown said goodbye to every client.
    good.wait_for("ERROR :Closing link: the server is shutting down")
        .await;
    assert_eq!(good.line().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_and_others_are_not_slowed() {
    let limits = format!("{GENEROUS}\nsendq_lines = 16\nsendq_timeout_ms = 300");
    let s = setup("irc-sendq", &limits).await;
    let addr = s.addr.clone();
    let peer = some_account_id(8);
    let mut good = Raw::register(&addr, &s.token, "alice", CAPS).await;

    // A tiny receive buffer so that the server's side fills quickly.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = socket
        .connect(addr.parse().expect("addr"))
        .await
        .expect("connect");
    let mut lazy = Raw::from_stream(stream);
    lazy.send(&format!("PASS {}", s.token)).await;
    lazy.send("NICK lazy").await;
    lazy.send("USER lazy 0 * :Lazy").await;
    lazy.wait_for(" 366 ").await;
    // Ask for help (eight lines) over and over, and read none of it: far more than the socket
    // buffers (megabytes) and the queue hold. The server must drop this client. It
    // stops reading from a client it drops, so our writes fail then: that is the signal.
    let mut lazy_wr = lazy.take_writer();
    let ask = "PRIVMSG root :help\r\n";
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let until = std::time::Instant::now() + common::DEADLINE;
        let mut asked = 0usize;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match tokio::time::timeout(left, lazy_wr.write_all(ask.as_bytes())).await {
                Ok(Ok(())) => asked += 1,
                Ok(Err(_)) => return Some(asked),
                Err(_) => return None,
            }
        }
    });
    // Meanwhile the other client works as usual.
    let mut i = 0;
    while !writer.is_finished() {
        good.assert_alive(&peer, &format!("sendq-{i}")).await;
        i += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let asked = writer
        .await
        .expect("writer")
        .expect("the server dropped the client that does not read");
    // What it finally reads ends (EOF or reset) far short of the answers it asked for.
    let got = lazy.read_to_eof().await;
    assert!(got < asked * 8 / 2, "{got} lines of {asked} answers");
    good.assert_alive(&peer, "sendq-end").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_connections_at_once() {
    let limits = format!("{GENEROUS}\nmax_connections = 330");
    let s = setup("irc-many", &limits).await;
    let addr = s.addr.clone();
    let peer = some_account_id(9);
    let mut good = Raw::register(&addr, &s.token, "alice", CAPS).await;

    // 320 clients register at the same time (several per identity is fine).
    let mut joins = Vec::new();
    for i in 0..320 {
        let (addr, token) = (addr.clone(), s.token.clone());
        joins.push(tokio::spawn(async move {
            let mut c = Raw::register(&addr, &token, &format!("c{i}"), "").await;
            c.send(&format!("PING :n{i}")).await;
            c.wait_for(&format!("PONG sessiond n{i}")).await;
            c
        }));
    }
    let mut clients = Vec::new();
    for j in joins {
        clients.push(j.await.expect("client registers"));
    }
    good.assert_alive(&peer, "many").await;

    // Fill up to the limit with unregistered connections; one more is refused with ERROR.
    let mut extra = Vec::new();
    for _ in 0..9 {
        let mut c = Raw::connect(&addr).await;
        c.send("PING :x").await;
        c.wait_for("PONG").await;
        extra.push(c);
    }
    let mut over = Raw::connect(&addr).await;
    over.wait_for("ERROR :Closing link: too many connections")
        .await;
    assert_eq!(over.line().await, None);

    // Once some leave, newcomers get in again.
    drop(extra);
    clients.truncate(300);
    let until = std::time::Instant::now() + common::DEADLINE;
    loop {
        let mut c = Raw::connect(&addr).await;
        c.send("PING :again").await;
        match c.line().await {
            Some(l) if l.contains("PONG") => break,
            other => {
                assert!(
                    std::time::Instant::now() < until,
                    "no room again: {other:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    for (i, c) in clients.iter_mut().enumerate().step_by(50) {
        c.send(&format!("PING :late{i}")).await;
        c.wait_for(&format!("PONG sessiond late{i}")).await;
    }
    good.assert_alive(&peer, "many-end").await;
}

#[tokio::test]
async fn a_flooding_client_is_disconnected() {
    let s = setup("irc-flood", "flood_burst = 20\nflood_lines_per_sec = 5").await;
    let addr = s.addr.clone();
    let peer = some_account_id(10);
    let mut good = Raw::register(&addr, &s.token, "alice", CAPS).await;
    let mut flood = Raw::register(&addr, &s.token, "flood", "").await;
    let mut burst = String::new();
    for i in 0..200 {
        burst.push_str(&format!("PING :f{i}\r\n"));
    }
    flood.send_bytes(burst.as_bytes()).await;
    flood.wait_for("ERROR :Closing link: Excess Flood").await;
    assert_eq!(flood.line().await, None);
    good.assert_alive(&peer, "flood").await;
}

/// SASL as IRCv3 sasl-3.1 has it: AUTHENTICATE needs the capability, a failure can be followed
/// by a successful retry, and CAP END in the middle of an exchange aborts it (906) while
/// registration goes on.
#[tokio::test]
async fn sasl_retries_aborts_and_needs_the_capability() {
    let s = setup("irc-sasl", GENEROUS).await;
    let addr = s.addr.clone();
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);

    // Without CAP REQ :sasl: refused at once, no "AUTHENTICATE +" and no wait.
    let mut nocap = Raw::connect(&addr).await;
    nocap.send("AUTHENTICATE PLAIN").await;
    let refused = nocap.line().await.expect("an answer");
    assert!(
        refused.contains(" 904 * :SASL authentication failed: request the sasl capability first"),
        "{refused}"
    );

    // A failure, then the right token: logged in, registered.
    let mut retry = Raw::connect(&addr).await;
    retry.send("CAP LS 302").await;
    retry.send("CAP REQ :sasl").await;
    retry.wait_for("CAP * ACK").await;
    retry.send("NICK again").await;
    retry.send("USER again 0 * :Again").await;
    retry.send("AUTHENTICATE PLAIN").await;
    retry.wait_for("AUTHENTICATE +").await;
    retry
        .send(&format!("AUTHENTICATE {}", b64("\0alice\0wrong")))
        .await;
    retry
        .wait_for(" 904 again :SASL authentication failed")
        .await;
    retry.send("AUTHENTICATE PLAIN").await;
    retry.wait_for("AUTHENTICATE +").await;
    retry
        .send(&format!(
            "AUTHENTICATE {}",
            b64(&format!("\0alice\0{}", s.token))
        ))
        .await;
    retry
        .wait_for(" 903 again :SASL authentication successful")
        .await;
    retry.send("CAP END").await;
    retry.wait_for(" 001 again ").await;

    // CAP END during the exchange: 906, and registration goes on with PASS.
    let mut abort = Raw::connect(&addr).await;
    abort.send("CAP REQ :sasl").await;
    abort.wait_for("CAP * ACK").await;
    abort.send(&format!("PASS {}", s.token)).await;
    abort.send("NICK midway").await;
    abort.send("USER midway 0 * :Midway").await;
    abort.send("AUTHENTICATE PLAIN").await;
    abort.wait_for("AUTHENTICATE +").await;
    abort.send("CAP END").await;
    let aborted = abort.line().await.expect("an answer");
    assert!(
        aborted.contains(" 906 midway :SASL authentication aborted"),
        "{aborted}"
    );
    abort.wait_for(" 001 midway ").await;
}

/// NOTICE never triggers an automatic reply (RFC 2812 §3.3.2), before registration or after.
#[tokio::test]
async fn a_notice_never_gets_an_automatic_reply() {
    let s = setup("irc-notice", GENEROUS).await;
    let addr = s.addr.clone();
    // Before registration: nothing back, not even 451.
    let mut early = Raw::connect(&addr).await;
    early.send("NOTICE someone :hello").await;
    early.send("PING :first").await;
    let next = early.line().await.expect("an answer");
    assert!(next.contains("PONG sessiond first"), "{next}");
    // To nobody, to a channel, to several: no numerics come back.
    let mut c = Raw::register(&addr, &s.token, "alice", CAPS).await;
    c.send("NOTICE nobody :hello?").await;
    c.send("NOTICE #elsewhere :hello?").await;
    c.send(&format!("NOTICE a,{} :hello?", some_account_id(3)))
        .await;
    c.send("PING :after-notices").await;
    let next = c.line().await.expect("an answer");
    assert!(next.contains("PONG sessiond after-notices"), "{next}");
}

/// RFC 2812: USER with an empty realname is 461; USERHOST marks an away user with `-`; LUSERS
/// answers 251/254/255 (252 and 253 only when not zero), not the MOTD.
#[tokio::test]
async fn user_userhost_and_lusers_as_rfc_2812_has_them() {
    let s = setup("irc-rfc", GENEROUS).await;
    let addr = s.addr.clone();
    let mut early = Raw::connect(&addr).await;
    early.send("USER early 0 * :").await;
    early.wait_for(" 461 * USER :Not enough parameters").await;

    let mut c = Raw::register(&addr, &s.token, "alice", CAPS).await;
    c.send("USERHOST alice").await;
    c.wait_for(" 302 alice alice=+alice@sessiond").await;
    c.send("AWAY :lunch").await;
    c.wait_for(" 306 alice ").await;
    c.send("USERHOST alice").await;
    c.wait_for(" 302 alice alice=-alice@sessiond").await;
    c.send("AWAY").await;
    c.wait_for(" 305 alice ").await;
    c.send("LUSERS").await;
    let mut codes = Vec::new();
    while codes.last().map(String::as_str) != Some("255") {
        let line = c.line().await.expect("LUSERS lines");
        codes.push(line.split(' ').nth(1).unwrap_or_default().to_owned());
        assert!(codes.len() < 10, "no 255: {codes:?}");
    }
    assert_eq!(codes, ["251", "254", "255"]);
}

/// message-tags: the welcome's ISUPPORT names the client tags that are not relayed.
#[tokio::test]
async fn clienttagdeny_says_which_client_tags_are_relayed() {
    let s = setup("irc-tags", GENEROUS).await;
    let c = Raw::register(&s.addr, &s.token, "alice", CAPS).await;
    assert!(
        c.seen
            .iter()
            .any(|l| l.contains(" 005 ") && l.contains(" CLIENTTAGDENY=*,-draft/typing,-typing,-draft/react,-draft/unreact,-draft/reply ")),
        "{:#?}",
        c.seen
    );
}

/// A client whose default nick is root (a Unix root account's) is welcomed under its identity's
/// name and told why; once registered, root stays the control user's.
#[tokio::test]
async fn the_nick_root_is_settled_at_the_welcome() {
    let s = setup("irc-root", GENEROUS).await;
    let mut root = Raw::connect(&s.addr).await;
    root.send(&format!("PASS {}", s.token)).await;
    root.send("NICK root").await;
    root.send("USER root 0 * :root").await;
    let welcome = root.wait_for(" 001 ").await;
    assert!(welcome.contains(" 001 alice :"), "{welcome}");
    let why = root.wait_for("NOTICE alice :").await;
    assert!(
        why.starts_with(":root!root@sessiond ")
            && why.contains("The nick root is the control user's"),
        "{why}"
    );
    root.wait_for(" 366 alice ").await;
    root.send("NICK root").await;
    root.wait_for(" 433 alice root :Nickname is already in use: root is the control user")
        .await;
}

/// The connection cap counts the connections that are open: after a full house leaves, the
/// next client gets in at once.
#[tokio::test]
async fn the_connection_cap_counts_only_open_connections() {
    let limits = format!("{GENEROUS}\nmax_connections = 6");
    let s = setup("irc-cap", &limits).await;
    let addr = s.addr.clone();
    let mut full = Vec::new();
    for i in 0..6 {
        let mut c = Raw::connect(&addr).await;
        c.send(&format!("PING :c{i}")).await;
        c.wait_for(&format!("PONG sessiond c{i}")).await;
        full.push(c);
    }
    drop(full);
    // Give the server a moment to see them go (it sees EOF at once; nothing else to wait for).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut next = Raw::register(&addr, &s.token, "next", "").await;
    next.send("PING :in").await;
    next.wait_for("PONG sessiond in").await;
}

#[tokio::test]
async fn bad_channel_names_room_urls_and_channel_lines_get_numerics() {
    let s = setup("irc-bad-chan", GENEROUS).await;
    let peer = some_account_id(7);
    let mut c = Raw::register(&s.addr, &s.token, "alice", CAPS).await;
    let key = "ab".repeat(32);
    // Names that cannot be channels: no '#', a control character, too long.
    c.send("JOIN lobby").await;
    c.wait_for(" 476 alice lobby :Bad channel name").await;
    c.send("JOIN #a\u{7}b").await;
    c.wait_for(" 476 alice #a\u{7}b :Bad channel name").await;
    c.send(&format!("JOIN #{}", "a".repeat(80))).await;
    c.wait_for(" 476 alice #aaaa").await;
    // A channel that does not exist, without a room URL: 403 saying how rooms are joined.
    c.send("JOIN #nosuch").await;
    let l = c.wait_for(" 403 alice #nosuch :No such channel").await;
    assert!(l.contains("room URL"), "{l}");
    // Bad room URLs, as key or as channel: 476 with what is wrong.
    c.send("JOIN #lobby http://127.0.0.1:1/lobby").await;
    let l = c
        .wait_for(" 476 alice #lobby :Bad community room URL")
        .await;
    assert!(l.contains("public_key"), "{l}");
    c.send("JOIN http://127.0.0.1:1/lobby?public_key=abcd")
        .await;
    c.wait_for(" 476 alice http://127.0.0.1:1/lobby?public_key=abcd :Bad community room URL: its public_key")
        .await;
    c.send(&format!("JOIN #https://?public_key={key}")).await;
    c.wait_for(" 476 alice #https://").await;
    // A well-formed URL this (offline) daemon cannot reach: 403 with the reason.
    c.send(&format!(
        "JOIN #lobby http://127.0.0.1:1/lobby?public_key={key}"
    ))
    .await;
    c.wait_for(" 403 alice #lobby :Cannot join the room: ")
        .await;
    // &session's rooms and groups commands with garbage.
    c.send("PRIVMSG &session :rooms join notaurl").await;
    c.wait_for("That is not a community room URL").await;
    c.send("PRIVMSG &session :rooms leave #nosuch").await;
    c.wait_for("You are in no room #nosuch").await;
    c.send("PRIVMSG &session :rooms frobnicate").await;
    c.wait_for(":rooms [list] | rooms join").await;
    c.send("PRIVMSG &session :groups create").await;
    c.wait_for("Usage: groups create").await;
    c.send("PRIVMSG &session :groups create \"unterminated")
        .await;
    c.wait_for("Usage: groups create").await;
    c.send("PRIVMSG &session :groups create Hikers nosuchnick")
        .await;
    c.wait_for("No contact is called nosuchnick").await;
    // Lines to channels that do not exist.
    c.send("PRIVMSG #nosuch :hi").await;
    c.wait_for(" 403 alice #nosuch ").await;
    c.send("@+draft/react=x;+draft/reply=1 TAGMSG #nosuch")
        .await;
    c.wait_for("FAIL TAGMSG INVALID_TARGET #nosuch").await;
    c.send("REDACT #nosuch 1").await;
    c.wait_for("FAIL REDACT INVALID_TARGET #nosuch").await;
    c.send("CHATHISTORY LATEST #nosuch * 10").await;
    c.wait_for("FAIL CHATHISTORY INVALID_TARGET LATEST #nosuch")
        .await;
    c.send("TOPIC #nosuch").await;
    c.wait_for(" 403 alice #nosuch ").await;
    c.send("MODE #nosuch").await;
    c.wait_for(" 403 alice #nosuch ").await;
    c.send("@+typing=active TAGMSG #nosuch").await;
    // An over-long line to a channel: 417, nothing sent, the connection goes on.
    c.send(&format!("PRIVMSG #nosuch :{}", "x".repeat(600)))
        .await;
    c.wait_for(" 417 alice ").await;
    c.assert_alive(&peer, "channels").await;
}
