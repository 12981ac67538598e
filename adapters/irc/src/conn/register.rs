//! Registration: CAP negotiation, PASS, NICK, USER, SASL PLAIN, the login check with the daemon,
//! and the welcome (001–005, MOTD, joining `&session`, then what the client missed).

use sessiond_api::client::{login, Login, LoginError};
use tracing::{debug, info};

use super::{Close, Conn, Sasl, Session};
use crate::cap::{self, Cap};
use crate::directory::{self, valid_nick, ROOT};
use crate::line::Message;
use crate::numeric::*;
use crate::sasl;

/// The software version in 002/004/351.
pub(super) const VERSION: &str = concat!("sessiond-irc-", env!("CARGO_PKG_VERSION"));

/// The control channel.
pub(crate) const CONTROL: &str = "&session";

impl Conn {
    /// `CAP LS|LIST|REQ|END`.
    pub(super) async fn cap(&mut self, msg: &Message) -> Result<(), Close> {
        let sub = msg.param(0).unwrap_or_default().to_ascii_uppercase();
        let me = self.me();
        let server = self.srv.config.server_name.clone();
        match sub.as_str() {
            "LS" => {
                let version: u32 = msg.param(1).and_then(|v| v.parse().ok()).unwrap_or(0);
                if self.session.is_none() {
                    self.cap_negotiating = true;
                }
                if version >= 302 {
                    self.caps.set(Cap::CapNotify, true);
                }
                self.send(
                    Message::new("CAP", vec![me, "LS".into(), cap::ls(version >= 302)])
                        .with_source(server),
                )
                .await
            }
            "LIST" => {
                let names = self.caps.names();
                self.send(Message::new("CAP", vec![me, "LIST".into(), names]).with_source(server))
                    .await
            }
            "REQ" => {
                let Some(arg) = msg.param(1) else {
                    return self
                        .numeric(ERR_NEEDMOREPARAMS, &["CAP", "Not enough parameters"])
                        .await;
                };
                if self.session.is_none() {
                    self.cap_negotiating = true;
                }
                let reply = match cap::parse_req(arg) {
                    Some(changes) => {
                        for (c, on) in changes {
                            self.caps.set(c, on);
                        }
                        "ACK"
                    }
                    None => "NAK",
                };
                self.send(
                    Message::new("CAP", vec![me, reply.into(), arg.to_owned()]).with_source(server),
                )
                .await
            }
            "END" => {
                self.cap_negotiating = false;
                self.maybe_register().await
            }
            _ => {
                let shown = msg.param(0).unwrap_or_default().to_owned();
                self.numeric(ERR_INVALIDCAPCMD, &[&shown, "Invalid CAP command"])
                    .await
            }
        }
    }

    /// `PASS <token>` or `PASS <identity>:<token>`.
    pub(super) async fn pass(&mut self, msg: &Message) -> Result<(), Close> {
        if self.session.is_some() {
            return self
                .numeric(ERR_ALREADYREGISTERED, &["You may not reregister"])
                .await;
        }
        self.pass = msg.param(0).map(str::to_owned);
        Ok(())
    }

    /// `NICK <nick>`, before or after registration.
    pub(super) async fn nick(&mut self, msg: &Message) -> Result<(), Close> {
        let Some(nick) = msg.param(0).filter(|n| !n.is_empty()) else {
            return self
                .numeric(ERR_NONICKNAMEGIVEN, &["No nickname given"])
                .await;
        };
        let nick = nick.to_owned();
        if !valid_nick(&nick) {
            return self
                .numeric(ERR_ERRONEUSNICKNAME, &[&nick, "Erroneous nickname"])
                .await;
        }
        let taken = nick.eq_ignore_ascii_case(ROOT)
            || self
                .session
                .as_ref()
                .is_some_and(|s| s.dir.account(&nick).is_some());
        if taken {
            return self
                .numeric(
                    ERR_NICKNAMEINUSE,
                    &[&nick, "Nickname is already in use (by root or a contact)"],
                )
                .await;
        }
        if self.session.is_some() {
            let old = self.my_prefix();
            self.nick = Some(nick.clone());
            return self
                .send(Message::new("NICK", vec![nick]).with_source(old))
                .await;
        }
        self.nick = Some(nick);
        self.maybe_register().await
    }

    /// `USER <username> <mode> <unused> :<realname>`.
    pub(super) async fn user(&mut self, msg: &Message) -> Result<(), Close> {
        if self.session.is_some() {
            return self
                .numeric(ERR_ALREADYREGISTERED, &["You may not reregister"])
                .await;
        }
        let user = msg.param(0).unwrap_or_default();
        if user.is_empty() {
            return self
                .numeric(ERR_NEEDMOREPARAMS, &["USER", "Not enough parameters"])
                .await;
        }
        self.user = Some(user.to_owned());
        self.realname = msg.param(3).unwrap_or_default().to_owned();
        self.maybe_register().await
    }

    /// `AUTHENTICATE PLAIN`, then the base64 credentials in 400-byte chunks.
    pub(super) async fn authenticate(&mut self, msg: &Message) -> Result<(), Close> {
        if self.session.is_some() || self.sasl_login.is_some() {
            return self
                .numeric(
                    ERR_SASLALREADY,
                    &["You have already authenticated using SASL"],
                )
                .await;
        }
        let arg = msg.param(0).unwrap_or_default();
        match std::mem::take(&mut self.sasl) {
            Sasl::Idle => {
                if arg == "*" {
                    return self
                        .numeric(ERR_SASLABORTED, &["SASL authentication aborted"])
                        .await;
                }
                if !arg.eq_ignore_ascii_case("PLAIN") {
                    self.numeric(RPL_SASLMECHS, &["PLAIN", "are available SASL mechanisms"])
                        .await?;
                    return self
                        .numeric(
                            ERR_SASLFAIL,
                            &["SASL authentication failed: unknown mechanism"],
                        )
                        .await;
                }
                self.sasl = Sasl::Collecting(String::new());
                self.send(Message::new("AUTHENTICATE", vec!["+".into()]))
                    .await
            }
            Sasl::Collecting(mut payload) => {
                if arg == "*" {
                    return self
                        .numeric(ERR_SASLABORTED, &["SASL authentication aborted"])
                        .await;
                }
                if arg.len() > sasl::CHUNK || payload.len() + arg.len() > sasl::MAX_PAYLOAD {
                    return self
                        .numeric(ERR_SASLTOOLONG, &["SASL message too long"])
                        .await;
                }
                if arg != "+" {
                    payload.push_str(arg);
                }
                if arg.len() == sasl::CHUNK {
                    self.sasl = Sasl::Collecting(payload);
                    return Ok(());
                }
                let payload = if payload.is_empty() {
                    "+".to_owned()
                } else {
                    payload
                };
                let creds = match sasl::decode_plain(&payload) {
                    Ok(creds) => creds,
                    Err(e) => return self.login_failed(ERR_SASLFAIL, &e.to_string()).await,
                };
                let user = creds.user().map(str::to_owned);
                match self.check_login(&creds.passwd, user.as_deref()).await {
                    Ok(l) => {
                        let prefix = self.my_prefix();
                        let name = l.identity.name.clone();
                        self.numeric(
                            RPL_LOGGEDIN,
                            &[&prefix, &name, &format!("You are now logged in as {name}")],
                        )
                        .await?;
                        self.numeric(RPL_SASLSUCCESS, &["SASL authentication successful"])
                            .await?;
                        self.sasl_login = Some(l);
                        self.maybe_register().await
                    }
                    Err(e) => self.login_failed(ERR_SASLFAIL, &login_text(&e)).await,
                }
            }
        }
    }

    /// Refuses a login: the numeric, then `ERROR` and the end of the connection.
    async fn login_failed(&mut self, code: &str, why: &str) -> Result<(), Close> {
        info!(peer = %self.peer, "IRC login refused");
        let text = if code == ERR_SASLFAIL {
            format!("SASL authentication failed: {why}")
        } else {
            format!("Password incorrect: {why}")
        };
        self.numeric(code, &[&text]).await?;
        Err(Close::Quit("Bad credentials".into()))
    }

    /// Checks a token with the daemon: a scoped token acts for its identity whatever `user`
    /// says; the admin token acts for the identity `user` names.
    async fn check_login(&self, token: &str, user: Option<&str>) -> Result<Login, LoginError> {
        match login(self.srv.api.clone(), token, None).await {
            Err(LoginError::IdentityNameRequired) => {
                let user = user.ok_or(LoginError::IdentityNameRequired)?;
                login(self.srv.api.clone(), token, Some(user)).await
            }
            other => other,
        }
    }

    /// Completes registration once NICK, USER and CAP END (if negotiating) are in and the
    /// credentials check out.
    async fn maybe_register(&mut self) -> Result<(), Close> {
        if self.session.is_some()
            || self.nick.is_none()
            || self.user.is_none()
            || self.cap_negotiating
            || matches!(self.sasl, Sasl::Collecting(_))
        {
            return Ok(());
        }
        let login = match self.sasl_login.take() {
            Some(l) => l,
            None => {
                let Some(pass) = self.pass.take() else {
                    return self
                        .login_failed(
                            ERR_PASSWDMISMATCH,
                            "a sessiond token is required (PASS <token> or SASL PLAIN)",
                        )
                        .await;
                };
                let (user, token) = match pass.split_once(':') {
                    Some((name, token)) if !name.is_empty() && !token.is_empty() => {
                        (Some(name.to_owned()), token.to_owned())
                    }
                    _ => (self.user.clone(), pass),
                };
                match self.check_login(&token, user.as_deref()).await {
                    Ok(l) => l,
                    Err(e) => return self.login_failed(ERR_PASSWDMISMATCH, &login_text(&e)).await,
                }
            }
        };
        let name = login.identity.name.clone();
        let sendq = self.srv.config.sendq_lines;
        let session = match Session::start(login, self.marks.clone(), sendq).await {
            Ok(s) => s,
            Err(status) => {
                let why = crate::err::status_text(&status);
                return Err(Close::Quit(format!("could not start the session: {why}")));
            }
        };
        // A nick that is a contact's would make messages ambiguous: take another.
        let mut nick = self.me();
        while session.dir.account(&nick).is_some() || nick.eq_ignore_ascii_case(ROOT) {
            nick = if nick.len() < directory::NICKLEN {
                format!("{nick}_")
            } else {
                format!("u{}", session.start_seq % 100_000)
            };
        }
        self.nick = Some(nick);
        self.session = Some(session);
        info!(peer = %self.peer, identity = %name, "IRC client registered");
        self.welcome().await?;
        self.join_control().await?;
        if !self.caps.has(Cap::Chathistory) {
            self.replay_missed().await?;
        }
        Ok(())
    }

    /// 001–005 and the MOTD.
    async fn welcome(&mut self) -> Result<(), Close> {
        let me = self.me();
        let server = self.srv.config.server_name.clone();
        let prefix = self.my_prefix();
        self.numeric(
            RPL_WELCOME,
            &[&format!("Welcome to Session through sessiond, {prefix}")],
        )
        .await?;
        self.numeric(
            RPL_YOURHOST,
            &[&format!("Your host is {server}, running {VERSION}")],
        )
        .await?;
        let started = self.srv.started.clone();
        self.numeric(
            RPL_CREATED,
            &[&format!("This server was started {started}")],
        )
        .await?;
        self.numeric(RPL_MYINFO, &[&server, VERSION, "i", "nt"])
            .await?;
        let tokens = isupport(&server);
        for chunk in tokens.chunks(12) {
            let mut params: Vec<&str> = chunk.iter().map(String::as_str).collect();
            params.push("are supported by this server");
            self.numeric(RPL_ISUPPORT, &params).await?;
        }
        debug!(nick = %me, "welcome sent");
        self.motd().await
    }

    /// The MOTD (also LUSERS and MOTD commands).
    pub(super) async fn motd(&mut self) -> Result<(), Close> {
        let server = self.srv.config.server_name.clone();
        let (identity, account) = match &self.session {
            Some(s) => (s.identity.clone(), s.account_id.clone()),
            None => return Ok(()),
        };
        self.numeric(
            RPL_MOTDSTART,
            &[&format!("- {server} Message of the day -")],
        )
        .await?;
        let lines = [
            format!("- You are {identity}, Session Account ID {account}"),
            "- Your contacts are nicks: /msg <nick> or /msg <Account ID> to write to someone."
                .to_owned(),
            format!("- {CONTROL} is the control channel: say 'help' there."),
            "- Messages you missed are replayed when you connect (or use CHATHISTORY).".to_owned(),
        ];
        for line in lines {
            self.numeric(RPL_MOTD, &[&line]).await?;
        }
        self.numeric(RPL_ENDOFMOTD, &["End of /MOTD command."])
            .await
    }
}

/// The ISUPPORT tokens: the real limits of this server.
fn isupport(server: &str) -> Vec<String> {
    let _ = server;
    [
        "AWAYLEN=200",
        "CASEMAPPING=ascii",
        "CHANLIMIT=&:1",
        "CHANMODES=,,,nt",
        "CHANNELLEN=8",
        "CHANTYPES=&",
        "CHATHISTORY=100",
        "MSGREFTYPES=msgid,timestamp",
        "NETWORK=Session",
        "NICKLEN=30",
        "PREFIX=(o)@",
        "TARGMAX=PRIVMSG:1,NOTICE:1,TAGMSG:1,WHOIS:1",
        "TOPICLEN=200",
        "USERLEN=64",
        "LINELEN=512",
        "UTF8ONLY",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// A refused login in words (without the token).
fn login_text(e: &LoginError) -> String {
    match e {
        LoginError::BadToken => "the token is not valid".into(),
        LoginError::IdentityNameRequired => {
            "the admin token needs an identity: give it as the user name (or PASS <identity>:<token>)"
                .into()
        }
        LoginError::UnknownIdentity(name) => format!("there is no identity named {name:?}"),
        LoginError::WrongIdentity { .. } => "the token belongs to another identity".into(),
        LoginError::Daemon(status) => crate::err::status_text(status),
    }
}
