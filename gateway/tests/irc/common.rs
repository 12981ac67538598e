//! Shared by the IRC adapter's tests and benchmark: a raw-line IRC client over TCP, and
//! identities with their scoped tokens.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use sessiond_api::v1::identities_client::IdentitiesClient;
use sessiond_api::v1::{CreateIdentityRequest, CreateTokenRequest};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tonic::transport::Channel;

/// Every wait in these tests ends by this.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Creates identity `name` with the admin token; returns (Account ID, a scoped token for it).
pub async fn identity_with_token(
    channel: &Channel,
    admin_token: &str,
    name: &str,
) -> (String, String) {
    let bearer = sessiond_api::client::Bearer::new(admin_token).expect("ascii token");
    let mut ids = IdentitiesClient::with_interceptor(channel.clone(), bearer);
    let account = ids
        .create(CreateIdentityRequest { name: name.into() })
        .await
        .expect("create identity")
        .into_inner()
        .identity
        .expect("identity")
        .account_id;
    let token = ids
        .create_token(CreateTokenRequest {
            name: name.into(),
            label: "irc test".into(),
        })
        .await
        .expect("create token")
        .into_inner()
        .token;
    (account, token)
}

/// An IRC client that speaks raw lines.
pub struct Raw {
    rd: BufReader<OwnedReadHalf>,
    wr: Option<OwnedWriteHalf>,
    /// Every line read so far, for failure messages.
    pub seen: Vec<String>,
}

impl Raw {
    pub async fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the IRC server");
        Raw::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> Raw {
        let (rd, wr) = stream.into_split();
        Raw {
            rd: BufReader::new(rd),
            wr: Some(wr),
            seen: Vec::new(),
        }
    }

    /// Sends one line (CR LF added).
    pub async fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let wr = self.wr.as_mut().expect("the writing half is here");
        wr.write_all(bytes).await.expect("write to the IRC server");
    }

    /// Takes the writing half (to write from another task).
    pub fn take_writer(&mut self) -> OwnedWriteHalf {
        self.wr.take().expect("the writing half is here")
    }

    /// The next line without its line ending, or None at EOF (or a reset connection).
    pub async fn line(&mut self) -> Option<String> {
        let mut buf = String::new();
        match tokio::time::timeout(DEADLINE, self.rd.read_line(&mut buf)).await {
            // EOF, or a reset (a server that drops a client may reset the connection).
            Ok(Ok(0)) | Ok(Err(_)) => None,
            Ok(Ok(_)) => {
                let line = buf.trim_end_matches(['\r', '\n']).to_owned();
                self.seen.push(line.clone());
                Some(line)
            }
            Err(_) => panic!("no line within {DEADLINE:?}; saw {:#?}", self.seen),
        }
    }

    /// Reads lines until one contains `want`; returns it. Panics at EOF or the deadline.
    pub async fn wait_for(&mut self, want: &str) -> String {
        let until = Instant::now() + DEADLINE;
        while Instant::now() < until {
            match self.line().await {
                Some(l) if l.contains(want) => return l,
                Some(_) => {}
                None => panic!("EOF while waiting for {want:?}; saw {:#?}", self.seen),
            }
        }
        panic!("timed out waiting for {want:?}");
    }

    /// Reads lines until EOF; returns how many. Panics at the deadline.
    pub async fn read_to_eof(&mut self) -> usize {
        let mut n = 0;
        while self.line().await.is_some() {
            n += 1;
        }
        n
    }

    /// Registers with PASS, NICK, USER (and CAP REQ first if `caps` is not empty); waits for the
    /// end of the NAMES of &session that closes the welcome.
    pub async fn register(addr: &str, pass: &str, nick: &str, caps: &str) -> Raw {
        let mut c = Raw::connect(addr).await;
        if !caps.is_empty() {
            c.send("CAP LS 302").await;
            c.send(&format!("CAP REQ :{caps}")).await;
            c.wait_for(" ACK ").await;
            c.send("CAP END").await;
        }
        c.send(&format!("PASS {pass}")).await;
        c.send(&format!("NICK {nick}")).await;
        c.send(&format!("USER {nick} 0 * :{nick}")).await;
        c.wait_for(" 001 ").await;
        c.wait_for(" 366 ").await;
        c
    }

    /// Proves the connection and the daemon behind it still work: a PING round trip and a
    /// message queued through the daemon (echoed: the client must have echo-message).
    pub async fn assert_alive(&mut self, to_account: &str, tag: &str) {
        self.send(&format!("PING :alive-{tag}")).await;
        self.wait_for(&format!("PONG sessiond alive-{tag}")).await;
        self.send(&format!("PRIVMSG {to_account} :still here {tag}"))
            .await;
        // Written to an Account ID: the echo is addressed to the contact's nick (after a NICK
        // line that renames the query), "s" and 8 hex digits for a nameless contact.
        let nick = format!("s{}", &to_account[2..10]);
        let echo = self.wait_for(&format!("still here {tag}")).await;
        assert!(echo.contains(&format!("PRIVMSG {nick} ")), "{echo}");
    }
}

/// A valid standard Account ID that is nobody's.
pub fn some_account_id(n: u8) -> String {
    format!("05{}", hex::encode([n; 32]))
}
