//! The `sessiond` CLI against a real daemon over its Unix socket, and the daemon's one-line
//! start-up errors (second daemon, corrupt data dir, bad config).

#[path = "support/daemon.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::{run_command, Daemon, TempDir, BIN};

fn cli(data_dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("SESSIOND_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cli");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("cli output")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "status {:?}, stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "expected failure, got {out:?}");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let last = err.lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("error: "), "stderr: {err}");
    last
}

#[test]
fn cli_commands_against_a_running_daemon() {
    let dir = TempDir::new("cli");
    let daemon = Daemon::start(dir.path());
    let d = dir.path();

    let alice = cli(d, &["identity", "new", "alice"], "");
    let stderr = String::from_utf8_lossy(&alice.stderr).to_string();
    let alice = json(&alice);
    assert_eq!(alice["name"], "alice");
    let alice_id = alice["account_id"].as_str().expect("account id").to_owned();
    let password = stderr
        .split(": ")
        .last()
        .expect("recovery password on stderr")
        .trim()
        .to_owned();
    assert_eq!(password.split_whitespace().count(), 13, "{stderr}");
    assert!(
        !String::from_utf8_lossy(&cli(d, &["identity", "list"], "").stdout).contains(&password)
    );

    let bob = json(&cli(d, &["identity", "new", "bob"], ""));
    let bob_id = bob["account_id"].as_str().expect("id").to_owned();

    // Restore reads the recovery password on stdin.
    json(&cli(d, &["identity", "remove", "alice"], ""));
    let restored = json(&cli(
        d,
        &["identity", "restore", "alice"],
        &format!("{password}\n"),
    ));
    assert_eq!(restored["account_id"], alice_id.as_str());
    let err = one_line_error(&cli(
        d,
        &["identity", "restore", "carol"],
        "nonsense words\n",
    ));
    assert!(err.contains("invalid argument"), "{err}");

    let list = json(&cli(d, &["identity", "list"], ""));
    let names: Vec<_> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|i| i["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    let token = json(&cli(d, &["identity", "token", "bob"], ""));
    assert_eq!(token["token"].as_str().map(str::len), Some(64));

    // Send queues; listen prints the backlog as JSON lines, then live events.
    let sent = json(&cli(
        d,
        &["send", "--from", "alice", "--to", &bob_id, "hello bob"],
        "",
    ));
    assert_eq!(sent["state"], "queued");
    assert_eq!(sent["seq"], 1);
    let err = one_line_error(&cli(
        d,
        &["send", "--from", "alice", "--to", "05nope", "x"],
        "",
    ));
    assert!(err.contains("recipient"), "{err}");
    let out = cli(d, &["send", "--from", "nobody", "--to", &bob_id, "x"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("nobody"));

    let mut listen = Command::new(BIN)
        .args(["listen", "alice", "--from-seq", "0", "--data-dir"])
        .arg(d)
        .stdout(Stdio::piped())
        .spawn()
        .expect("listen");
    let mut lines = BufReader::new(listen.stdout.take().expect("stdout")).lines();
    let first: serde_json::Value =
        serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("json");
    assert_eq!(first["seq"], 1);
    assert_eq!(first["type"], "outgoing");
    assert_eq!(first["text"], "hello bob");
    json(&cli(
        d,
        &["send", "--from", "alice", "--to", &bob_id, "again"],
        "",
    ));
    let second: serde_json::Value =
        serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("json");
    assert_eq!(second["seq"], 2);
    assert_eq!(second["text"], "again");

    // A contact's handle works as --to (case-insensitively): bob got `s` + the start of his
    // Account ID when alice first wrote to him (he announced no name).
    let handle = format!("S{}", &bob_id[2..10]);
    json(&cli(
        d,
        &["send", "--from", "alice", "--to", &handle, "by handle"],
        "",
    ));
    let third: serde_json::Value =
        serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("json");
    assert_eq!(third["text"], "by handle");
    assert_eq!(third["recipient"], bob_id.as_str());
    let out = cli(d, &["send", "--from", "alice", "--to", "nobody", "x"], "");
    assert_eq!(out.status.code(), Some(2));
    let err = one_line_error(&out);
    assert!(
        err.contains("neither an Account ID nor the handle"),
        "{err}"
    );

    // SIGTERM: the daemon stops cleanly and `listen` ends with an error line.
    assert!(daemon.terminate().success());
    let status = listen.wait().expect("listen exits");
    assert!(!status.success());
    assert!(!d.join("sessiond.sock").exists(), "the socket is removed");

    // No daemon: a one-line error.
    let err = one_line_error(&cli(d, &["identity", "list"], ""));
    assert!(err.contains("cannot reach sessiond"), "{err}");
}

#[test]
fn a_second_daemon_on_the_same_data_dir_fails_with_one_line() {
    let dir = TempDir::new("second");
    let _first = Daemon::start(dir.path());
    let out = run_command(dir.path()).output().expect("second daemon");
    let err = one_line_error(&out);
    assert!(err.contains("in use by another sessiond"), "{err}");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_corrupt_database_fails_with_one_line_and_is_left_alone() {
    let dir = TempDir::new("corrupt");
    std::fs::create_dir_all(dir.path()).expect("dir");
    let garbage = vec![0x42u8; 4096];
    std::fs::write(dir.path().join("sessiond.redb"), &garbage).expect("write");
    let out = run_command(dir.path()).output().expect("daemon");
    let err = one_line_error(&out);
    assert!(err.contains("damaged or not a sessiond database"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("sessiond.redb")).expect("read"),
        garbage,
        "the file is not touched"
    );
}

#[test]
fn a_bad_config_file_fails_with_one_line() {
    let dir = TempDir::new("badcfg");
    std::fs::create_dir_all(dir.path()).expect("dir");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[grpc]\nlisten_on = \"127.0.0.1:1\"\n").expect("write");
    let out = run_command(dir.path())
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("daemon");
    let err = one_line_error(&out);
    assert!(
        err.contains("unknown field") && err.contains("listen_on"),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_adapters_listen_where_told_and_are_reported() {
    let dir = TempDir::new("adapters");
    let daemon = Daemon::start(dir.path());
    for (what, addr) in [("irc", &daemon.irc), ("matrix", &daemon.matrix)] {
        let addr = addr.as_deref().unwrap_or_else(|| panic!("{what} address"));
        assert!(addr.starts_with("127.0.0.1:"), "{what}: {addr}");
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {what}: {e}"));
    }
}

#[test]
fn an_adapter_port_in_use_fails_with_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").to_string();
    for flag in ["--irc-listen", "--matrix-listen"] {
        let dir = TempDir::new("adapter-in-use");
        let out = run_command(dir.path())
            .arg(flag)
            .arg(&port)
            .output()
            .expect("daemon");
        let err = one_line_error(&out);
        assert!(
            err.contains("cannot listen on") && err.contains(&port),
            "{flag}: {err}"
        );
        assert_eq!(out.status.code(), Some(1), "{flag}");
    }
}

#[test]
fn bad_adapter_addresses_fail_with_one_line() {
    let dir = TempDir::new("adapter-bad-addr");
    let out = run_command(dir.path())
        .env("SESSIOND_IRC_LISTEN", "localhost:six")
        .output()
        .expect("daemon");
    let err = one_line_error(&out);
    assert!(err.contains("SESSIOND_IRC_LISTEN"), "{err}");
    assert_eq!(out.status.code(), Some(2));
    let out = run_command(dir.path())
        .args(["--matrix-listen", "not-an-address"])
        .output()
        .expect("daemon");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--matrix-listen"), "{stderr}");
}

#[test]
fn status_reports_a_running_daemon() {
    let dir = TempDir::new("cli-status");
    let daemon = Daemon::start(dir.path());
    let d = dir.path();
    let http = daemon.http.clone().expect("the HTTP listener runs");
    json(&cli(d, &["identity", "new", "alice"], ""));
    json(&cli(d, &["identity", "new", "bob"], ""));
    let bob = json(&cli(d, &["identity", "list"], ""))[1]["account_id"]
        .as_str()
        .expect("bob's id")
        .to_owned();
    json(&cli(
        d,
        &["send", "--from", "alice", "--to", &bob, "hi"],
        "",
    ));

    let out = cli(d, &["status", "--metrics-listen", &http], "");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    for expected in [
        "not ready",
        "network: offline",
        "Identities 2",
        "alice",
        "queued 1",
        "Outbox    1 queued",
        "IRC",
        "Matrix",
        &http,
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    // Account IDs only shortened.
    assert!(!text.contains(&bob), "{text}");

    let report = json(&cli(
        d,
        &["status", "--json", "--metrics-listen", &http],
        "",
    ));
    assert_eq!(report["health"]["ready"], false);
    assert_eq!(report["network"]["name"], "offline");
    assert_eq!(report["identities"][0]["name"], "alice");
    assert_eq!(report["identities"][0]["queued"], 1);
    assert_eq!(report["outbox"]["depth"], 1);
    assert_eq!(report["encrypted"], false);

    // Nobody there: one line, exit 1.
    let out = cli(d, &["status", "--metrics-listen", "127.0.0.1:1"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("cannot get the status"));
    drop(daemon);
}

/// `sessiond passphrase …` with the passphrase files given.
fn passphrase_cmd(d: &Path, args: &[&str], current: Option<&Path>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("passphrase")
        .args(args)
        .arg("--data-dir")
        .arg(d)
        .env_remove("SESSIOND_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdin(Stdio::null());
    match current {
        Some(f) => cmd.env("SESSIOND_PASSPHRASE_FILE", f),
        None => cmd.env_remove("SESSIOND_PASSPHRASE_FILE"),
    };
    cmd.output().expect("passphrase command")
}

fn export(d: &Path, name: &str) -> String {
    json(&cli(d, &["identity", "export", name], ""))["recovery_password"]
        .as_str()
        .expect("recovery password")
        .to_owned()
}

fn seed_in_file(d: &Path, password: &str) -> bool {
    let seed = session_proto::mnemonic::decode_recovery_password(password).expect("decode");
    let bytes = std::fs::read(d.join("sessiond.redb")).expect("read the store");
    bytes.windows(seed.len()).any(|w| w == seed.as_slice())
}

#[test]
fn a_passphrase_protects_the_seeds_and_migrates_both_ways() {
    let dir = TempDir::new("cli-pass");
    let d = dir.path();
    let daemon = Daemon::start(d);
    json(&cli(d, &["identity", "new", "alice"], ""));
    let password = export(d, "alice");
    assert!(daemon.terminate().success());
    assert!(seed_in_file(d, &password), "the plain store holds the seed");

    let files = TempDir::new("cli-pass-files");
    std::fs::create_dir_all(files.path()).expect("dir");
    let right = files.path().join("right");
    let wrong = files.path().join("wrong");
    let newer = files.path().join("newer");
    std::fs::write(&right, "a long passphrase\n").expect("write");
    std::fs::write(&wrong, "not it\n").expect("write");
    std::fs::write(&newer, "an even longer passphrase\n").expect("write");
    let new_flag = |f: &Path| ["--new-passphrase-file".to_owned(), f.display().to_string()];

    // set: no new passphrase and no terminal is one line; with a file, the seeds are sealed.
    let out = passphrase_cmd(d, &["set"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("new passphrase"));
    let [flag, file] = new_flag(&right);
    let out = passphrase_cmd(d, &["set", &flag, &file], None);
    assert_eq!(json(&out)["passphrase"], "set");
    assert!(
        !seed_in_file(d, &password),
        "a seed is readable in the encrypted store"
    );
    let out = passphrase_cmd(d, &["set", &flag, &file], None);
    assert!(one_line_error(&out).contains("encrypted already"));

    // Refused without the passphrase or with a wrong one: one line, and the daemon exits.
    let out = run_command(d).output().expect("run");
    assert!(!out.status.success());
    assert!(one_line_error(&out).contains("encrypted"), "{out:?}");
    let out = run_command(d)
        .env("SESSIOND_PASSPHRASE_FILE", &wrong)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = one_line_error(&out);
    assert!(err.contains("wrong passphrase"), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );

    // Opened with it, from the file or as a systemd credential.
    let mut cmd = run_command(d);
    cmd.env("SESSIOND_PASSPHRASE_FILE", &right);
    let daemon = Daemon::start_with(d, cmd);
    assert_eq!(export(d, "alice"), password);
    json(&cli(d, &["identity", "new", "bob"], ""));
    let bob_password = export(d, "bob");
    assert!(daemon.terminate().success());
    assert!(
        !seed_in_file(d, &bob_password),
        "a new identity's seed is sealed too"
    );
    let creds = TempDir::new("cli-pass-creds");
    std::fs::create_dir_all(creds.path()).expect("dir");
    std::fs::copy(&right, creds.path().join("passphrase")).expect("credential");
    let mut cmd = run_command(d);
    cmd.env("CREDENTIALS_DIRECTORY", creds.path());
    let daemon = Daemon::start_with(d, cmd);
    assert_eq!(export(d, "bob"), bob_password);
    assert!(daemon.terminate().success());

    // change: the old one stops working.
    let [flag, file] = new_flag(&newer);
    let out = passphrase_cmd(d, &["change", &flag, &file], Some(&wrong));
    assert!(one_line_error(&out).contains("wrong passphrase"));
    json(&passphrase_cmd(d, &["change", &flag, &file], Some(&right)));
    let out = run_command(d)
        .env("SESSIOND_PASSPHRASE_FILE", &right)
        .output()
        .expect("run");
    assert!(one_line_error(&out).contains("wrong passphrase"));

    // remove: plain again; the daemon starts without a passphrase.
    let out = passphrase_cmd(d, &["remove"], Some(&newer));
    assert_eq!(json(&out)["passphrase"], "removed");
    assert!(seed_in_file(d, &password));
    let daemon = Daemon::start(d);
    assert_eq!(export(d, "alice"), password);
    assert_eq!(export(d, "bob"), bob_password);
    assert!(daemon.terminate().success());
    let out = passphrase_cmd(d, &["remove"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("not encrypted"));
}
