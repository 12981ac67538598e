//! Runs the built `sessiond` binary's `identity inspect` with good and bad standard input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const PUFFIN: &str =
    "puffin luxury annoyed rustled memoir faxed smidgen puddle kiwi nylon utopia zinger kiwi";

fn inspect(stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args(["identity", "inspect"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sessiond binary runs");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("sessiond finishes")
}

/// Asserts a refusal: exit 2, nothing on stdout, exactly one stderr line equal to `want`.
fn assert_refused(out: &Output, want: &str) {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert_eq!(err.trim_end(), want);
}

#[test]
fn vector_phrase_gives_its_account_id() {
    let out = inspect(format!("{PUFFIN}\n").as_bytes());
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["account_id"],
        "054830367d369d94605247999a375dbd0a0f65fdec5de1535612bcb6d4de452c69"
    );
    assert_eq!(
        v["ed25519_pubkey"],
        "f661a69453ef81a3b75bfcf954eb1f439d4d74edcab0e72a5c435ee418a907be"
    );
    // Second vector, given in capitals and without a trailing newline.
    let out = inspect(
        b"AMAZE BUFFET CAKE ENTRANCE SYMPTOMS TIGER LAMB MAZE NESTLE PYTHON DUSTED FAXED FAXED",
    );
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["account_id"],
        "05ca03b8e369aeeb69fd260c2957d37b232db17a60db7a39bca9f0c0a6be135c1a"
    );
}

#[test]
fn unknown_word() {
    let phrase = PUFFIN.replacen("annoyed", "xyzzy", 1);
    assert_refused(
        &inspect(phrase.as_bytes()),
        "error: unknown word \"xyzzy\" (word 3)",
    );
}

#[test]
fn wrong_word_count() {
    let phrase = PUFFIN.rsplit_once(' ').unwrap().0;
    assert_refused(
        &inspect(phrase.as_bytes()),
        "error: expected 13 words, got 12",
    );
}

#[test]
fn bad_checksum() {
    let phrase = format!("{} puffin", PUFFIN.rsplit_once(' ').unwrap().0);
    assert_refused(
        &inspect(phrase.as_bytes()),
        "error: the checksum word (word 13) does not match the other words",
    );
}

#[test]
fn empty_input() {
    assert_refused(&inspect(b""), "error: the recovery password is empty");
    assert_refused(&inspect(b" \n"), "error: the recovery password is empty");
}

#[test]
fn non_utf8_input() {
    assert_refused(
        &inspect(b"puffin \xff\xfe luxury"),
        "error: the recovery password is not valid UTF-8",
    );
}

#[test]
fn phrase_is_not_accepted_on_the_command_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args(["identity", "inspect", PUFFIN])
        .stdin(Stdio::null())
        .output()
        .expect("sessiond runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
