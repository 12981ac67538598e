//! Connection tests without a daemon: everything a client can get wrong before it logs in, over
//! an in-memory stream, with paused time where time matters.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::watch;
use tonic::transport::Endpoint;

use super::{run, Server};
use crate::config::IrcConfig;

struct TestClient {
    rd: BufReader<ReadHalf<DuplexStream>>,
    wr: WriteHalf<DuplexStream>,
    _stop: watch::Sender<bool>,
}

fn start(config: IrcConfig) -> TestClient {
    // A daemon that is not there: any login attempt fails as "unavailable".
    let api = Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
    let srv = Arc::new(Server {
        config,
        api: api.into(),
        started: "now".into(),
    });
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(run(
        srv,
        theirs,
        "127.0.0.1:1".parse().expect("addr"),
        stop_rx,
    ));
    let (rd, wr) = tokio::io::split(ours);
    TestClient {
        rd: BufReader::new(rd),
        wr,
        _stop: stop,
    }
}

impl TestClient {
    async fn send(&mut self, raw: &[u8]) {
        self.wr.write_all(raw).await.expect("write");
    }

    /// The next line, or None at EOF.
    async fn line(&mut self) -> Option<String> {
        let mut buf = String::new();
        let n = tokio::time::timeout(Duration::from_secs(600), self.rd.read_line(&mut buf))
            .await
            .expect("a line in time")
            .expect("read");
        (n > 0).then_some(buf)
    }

    async fn expect(&mut self, want: &str) -> String {
        let line = self
            .line()
            .await
            .unwrap_or_else(|| panic!("EOF, wanted {want:?}"));
        assert!(line.contains(want), "wanted {want:?}, got {line:?}");
        line
    }

    async fn expect_eof(&mut self) {
        assert_eq!(self.line().await, None);
    }
}

#[tokio::test]
async fn bad_input_before_registration_gets_numerics_and_the_connection_carries_on() {
    let mut c = start(IrcConfig::default());
    c.send(b"PRIVMSG alice :hi\r\n").await;
    c.expect(" 451 * :You have not registered").await;
    c.send(b"FROB x\r\n").await;
    c.expect(" 421 * FROB :Unknown command").await;
    c.send(b"USER a b\r\n").await;
    c.expect(" 461 * USER :Not enough parameters").await;
    c.send(b"NICK 1bad\r\n").await;
    c.expect(" 432 * 1bad :Erroneous nickname").await;
    // Without CAP REQ :sasl, AUTHENTICATE is refused at once (no "AUTHENTICATE +").
    c.send(b"AUTHENTICATE PLAIN\r\n").await;
    c.expect(" 904 * :SASL authentication failed: request the sasl capability first")
        .await;
    // A NOTICE gets no reply, not even 451.
    c.send(b"NOTICE alice :hi\r\nPING early\r\n").await;
    c.expect("PONG sessiond early").await;
    c.send(b"CAP FROB\r\n").await;
    c.expect(" 410 * FROB :Invalid CAP command").await;
    c.send(b"CAP REQ :sasl bogus-cap\r\n").await;
    c.expect("CAP * NAK :sasl bogus-cap").await;
    c.send(b"CAP REQ :sasl echo-message\r\n").await;
    c.expect("CAP * ACK :sasl echo-message").await;
    c.send(b"CAP LIST\r\n").await;
    c.expect("CAP * LIST :echo-message sasl").await;
    c.send(b"CAP\r\n").await;
    c.expect(" 461 * CAP ").await;
    c.send(b"PRIVMSG bob :\xff\xfe\r\n").await;
    c.expect("FAIL PRIVMSG INVALID_UTF8 ").await;
    let mut long = b"PRIVMSG bob :".to_vec();
    long.extend(std::iter::repeat_n(b'x', 600));
    long.extend_from_slice(b"\r\n");
    c.send(&long).await;
    c.expect(" 417 * :Input line was too long").await;
    // A line far over any limit, in pieces, is refused once and skipped whole.
    c.send(&vec![b'y'; 20_000]).await;
    c.send(b"yyy\r\nPING after\r\n").await;
    c.expect(" 417 ").await;
    c.expect("PONG sessiond after").await;
    c.send(b"AUTHENTICATE FOO\r\n").await;
    c.expect(" 908 * PLAIN :").await;
    c.expect(" 904 * ").await;
    c.send(b"AUTHENTICATE PLAIN\r\n").await;
    c.expect("AUTHENTICATE +").await;
    c.send(b"AUTHENTICATE *\r\n").await;
    c.expect(" 906 * ").await;
    c.send(b"AUTHENTICATE PLAIN\r\n").await;
    c.expect("AUTHENTICATE +").await;
    let mut chunk = b"AUTHENTICATE ".to_vec();
    chunk.extend(std::iter::repeat_n(b'A', 401));
    chunk.extend_from_slice(b"\r\n");
    c.send(&chunk).await;
    c.expect(" 905 * ").await;
    c.send(b"PING still-here\r\n").await;
    c.expect("PONG sessiond still-here").await;
}

#[tokio::test]
async fn no_credentials_is_464_and_a_disconnect() {
    let mut c = start(IrcConfig::default());
    c.send(b"NICK alice\r\nUSER alice 0 * :Alice\r\n").await;
    c.expect(" 464 alice :Password incorrect: a sessiond token is required")
        .await;
    c.expect("ERROR :Closing link: Bad credentials").await;
    c.expect_eof().await;
}

#[tokio::test]
async fn a_daemon_that_does_not_answer_is_no_wrong_password() {
    let mut c = start(IrcConfig::default());
    c.send(b"PASS abcdef\r\nNICK alice\r\nUSER alice 0 * :Alice\r\n")
        .await;
    let line = c
        .expect("ERROR :Closing link: sessiond could not check the login (")
        .await;
    // The first line the client gets: no 464 before it.
    assert!(line.contains("); try again"), "{line}");
    c.expect_eof().await;
}

#[tokio::test]
async fn registration_waits_for_cap_end() {
    let mut c = start(IrcConfig::default());
    c.send(b"CAP LS 302\r\nNICK alice\r\nUSER alice 0 * :Alice\r\n")
        .await;
    let ls = c.expect("CAP * LS :").await;
    assert!(ls.contains("sasl=PLAIN") && ls.contains("draft/chathistory"));
    c.send(b"PING x\r\n").await;
    c.expect("PONG").await;
    c.send(b"CAP END\r\n").await;
    c.expect(" 464 alice ").await;
}

#[tokio::test(start_paused = true)]
async fn registration_times_out() {
    let mut c = start(IrcConfig::default());
    c.send(b"NICK alice\r\n").await;
    c.expect("ERROR :Closing link: Registration timed out")
        .await;
    c.expect_eof().await;
}

#[tokio::test(start_paused = true)]
async fn a_flood_is_cut_off() {
    let config = IrcConfig {
        flood_burst: 5,
        flood_lines_per_sec: 1,
        ..IrcConfig::default()
    };
    let mut c = start(config);
    c.send(b"PING 1\r\nPING 2\r\nPING 3\r\nPING 4\r\nPING 5\r\n")
        .await;
    for i in 1..=5 {
        c.expect(&format!("PONG sessiond {i}")).await;
    }
    // After a second one more line is fine...
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.send(b"PING 6\r\n").await;
    c.expect("PONG sessiond 6").await;
    // ...a burst over the limit is not.
    c.send(b"PING 7\r\nPING 8\r\nPING 9\r\n").await;
    c.expect("ERROR :Closing link: Excess Flood").await;
    c.expect_eof().await;
}

#[tokio::test]
async fn shutdown_says_goodbye() {
    let mut c = start(IrcConfig::default());
    c.send(b"PING 1\r\n").await;
    c.expect("PONG").await;
    let _ = c._stop.send(true);
    c.expect("ERROR :Closing link: the server is shutting down")
        .await;
    c.expect_eof().await;
}
