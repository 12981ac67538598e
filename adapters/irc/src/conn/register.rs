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

/// Failed SASL attempts allowed on one connection; the last one ends it.
pub(super) const SASL_ATTEMPTS: u8 = 3;

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
        // Before registration any valid nick is taken as asked: a clash with root or a contact
        // is settled at the welcome (see `free_nick`) rather than refused, so a client's default
        // nick (often root) just works. Once registered, a clash is refused.
        if let Some(s) = &self.session {
            let why = if nick.eq_ignore_ascii_case(ROOT) {
                Some("Nickname is already in use: root is the control user here".to_owned())
            } else {
                s.dir
                    .account(&nick)
                    .map(|_| "Nickname is already in use: it is a contact's nick".to_owned())
            };
            if let Some(why) = why {
                return self.numeric(ERR_NICKNAMEINUSE, &[&nick, &why]).await;
            }
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
        let realname = msg.param(3).unwrap_or_default();
        if realname.is_empty() {
            // RFC 2812 §3.1.3: the realname is a parameter like the others; empty is missing.
            return self
                .numeric(ERR_NEEDMOREPARAMS, &["USER", "Not enough parameters"])
                .await;
        }
        self.user = Some(user.to_owned());
        self.realname = realname.to_owned();
        self.maybe_register().await
    }

    /// `AUTHENTICATE PLAIN`, then the base64 credentials in 400-byte chunks (IRCv3 sasl-3.1):
    /// only after `CAP REQ :sasl`; a failed attempt is answered with 904 and may be retried,
    /// up to [`SASL_ATTEMPTS`] failures, after which the connection ends.
    pub(super) async fn authenticate(&mut self, msg: &Message) -> Result<(), Close> {
        if self.session.is_some() || self.sasl_login.is_some() {
            return self
                .numeric(
                    ERR_SASLALREADY,
                    &["You have already authenticated using SASL"],
                )
                .await;
        }
        if !self.caps.has(Cap::Sasl) {
            return self
                .numeric(
                    ERR_SASLFAIL,
                    &["SASL authentication failed: request the sasl capability first (CAP REQ :sasl)"],
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
                    Err(e) => return self.sasl_failed(&e.to_string()).await,
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
                    Err(LoginError::Daemon(status)) => {
                        // The daemon could not answer: not the client's failure.
                        let why = crate::err::status_text(&status);
                        self.numeric(
                            ERR_SASLFAIL,
                            &[&format!("SASL authentication failed: {why}")],
                        )
                        .await
                    }
                    Err(e) => self.sasl_failed(&login_text(&e)).await,
                }
            }
        }
    }

    /// A failed SASL attempt: 904, and the client may try again (or go on with CAP END);
    /// after [`SASL_ATTEMPTS`] failures the connection ends.
    async fn sasl_failed(&mut self, why: &str) -> Result<(), Close> {
        self.sasl_failures += 1;
        info!(peer = %self.peer, failures = self.sasl_failures, "IRC SASL login refused");
        self.numeric(
            ERR_SASLFAIL,
            &[&format!("SASL authentication failed: {why}")],
        )
        .await?;
        if self.sasl_failures >= SASL_ATTEMPTS {
            return Err(Close::Quit("Too many failed SASL attempts".into()));
        }
        Ok(())
    }

    /// Refuses a login by PASS: the numeric, then `ERROR` and the end of the connection.
    async fn login_failed(&mut self, why: &str) -> Result<(), Close> {
        info!(peer = %self.peer, "IRC login refused");
        self.numeric(ERR_PASSWDMISMATCH, &[&format!("Password incorrect: {why}")])
            .await?;
        Err(Close::Quit("Bad credentials".into()))
    }

    /// Checks a token with the daemon: a scoped token acts for its identity whatever `user`
    /// says; the admin token acts for the identity `user` names.
    async fn check_login(&self, token: &str, user: Option<&str>) -> Result<Login, LoginError> {
        // This connection's own channel: it lives as long as the login's client does.
        let api = self.srv.api.channel();
        match login(api.clone(), token, None).await {
            Err(LoginError::IdentityNameRequired) => {
                let user = user.ok_or(LoginError::IdentityNameRequired)?;
                login(api, token, Some(user)).await
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
        {
            return Ok(());
        }
        if matches!(self.sasl, Sasl::Collecting(_)) {
            // sasl-3.1: registration completing during an exchange aborts it; registration goes
            // on without it (with PASS, if given).
            self.sasl = Sasl::Idle;
            self.numeric(ERR_SASLABORTED, &["SASL authentication aborted"])
                .await?;
        }
        let login = match self.sasl_login.take() {
            Some(l) => l,
            None => {
                let Some(pass) = self.pass.take() else {
                    return self
                        .login_failed("a sessiond token is required (PASS <token> or SASL PLAIN)")
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
                    // The daemon could not answer: not a wrong password (no 464, which
                    // clients take as "fix your credentials"); they may reconnect and retry.
                    Err(LoginError::Daemon(status)) => {
                        let why = crate::err::status_text(&status);
                        info!(peer = %self.peer, "IRC login not checked: the daemon did not answer");
                        return Err(Close::Quit(format!(
                            "sessiond could not check the login ({why}); try again"
                        )));
                    }
                    Err(e) => return self.login_failed(&login_text(&e)).await,
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
        let asked = self.me();
        let nick = free_nick(&asked, &name, &session.dir, session.start_seq);
        self.nick = Some(nick.clone());
        self.session = Some(session);
        info!(peer = %self.peer, identity = %name, "IRC client registered");
        self.welcome().await?;
        if nick != asked {
            let whose = if asked.eq_ignore_ascii_case(ROOT) {
                "the control user's".to_owned()
            } else {
                "a contact's".to_owned()
            };
            self.root_notice(&format!(
                "The nick {asked} is {whose} here, so you are {nick}. Use /nick to pick another."
            ))
            .await?;
        }
        self.join_control().await?;
        self.join_channels().await?;
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
        let tokens = isupport(&server, self.srv.config.filehost.as_deref());
        for chunk in tokens.chunks(12) {
            let mut params: Vec<&str> = chunk.iter().map(String::as_str).collect();
            params.push("are supported by this server");
            self.numeric(RPL_ISUPPORT, &params).await?;
        }
        debug!(nick = %me, "welcome sent");
        self.lusers().await?;
        self.motd().await
    }

    /// `LUSERS` (RFC 2812 §3.4.2): the people this client can see (itself, root and its
    /// contacts) on one server with one channel. 252 and 253 are left out: their counts
    /// (operators, unknown connections) are zero, and the RFC sends only non-zero ones.
    pub(super) async fn lusers(&mut self) -> Result<(), Close> {
        let contacts = self.session.as_ref().map_or(0, |s| s.dir.all().len());
        let users = (2 + contacts).to_string();
        self.numeric(
            RPL_LUSERCLIENT,
            &[&format!(
                "There are {users} users and 0 invisible on 1 servers"
            )],
        )
        .await?;
        self.numeric(RPL_LUSERCHANNELS, &["1", "channels formed"])
            .await?;
        self.numeric(
            RPL_LUSERME,
            &[&format!("I have {users} clients and 0 servers")],
        )
        .await
    }

    /// The MOTD (also the MOTD command).
    pub(super) async fn motd(&mut self) -> Result<(), Close> {
        let server = self.srv.config.server_name.clone();
        let (identity, account, client) = match &self.session {
            Some(s) => (s.identity.clone(), s.account_id.clone(), s.client.clone()),
            None => return Ok(()),
        };
        // Said at every login while it holds: the user may not look at 'account'.
        let device_keys = client
            .identities
            .clone()
            .get_identity(sessiond_api::v1::GetIdentityRequest {
                name: identity.clone(),
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().identity)
            .is_some_and(|i| i.other_device_keys);
        self.numeric(
            RPL_MOTDSTART,
            &[&format!("- {server} Message of the day -")],
        )
        .await?;
        let mut lines = vec![
            format!("- You are {identity}, Session Account ID {account}"),
            "- Your contacts are nicks: /msg <nick> or /msg <Account ID> to write to someone."
                .to_owned(),
            format!("- {CONTROL} is the control channel: say 'help' there."),
            "- Messages you missed are replayed when you connect (or use CHATHISTORY).".to_owned(),
        ];
        if device_keys {
            lines.push(format!("- {}", super::control::DEVICE_KEYS_NOTICE));
        }
        for line in lines {
            self.numeric(RPL_MOTD, &[&line]).await?;
        }
        self.numeric(RPL_ENDOFMOTD, &["End of /MOTD command."])
            .await
    }
}

/// The nick a client registers with: the one it asked for, unless that is root's or a
/// contact's (a clash would make messages ambiguous). Then the identity's name, if that is a
/// valid nick and free; else the asked nick with `_` appended until free.
fn free_nick(asked: &str, identity: &str, dir: &directory::Directory, seq: u64) -> String {
    let taken = |n: &str| n.eq_ignore_ascii_case(ROOT) || dir.account(n).is_some();
    if !taken(asked) {
        return asked.to_owned();
    }
    if valid_nick(identity) && !taken(identity) {
        return identity.to_owned();
    }
    let mut nick = asked.to_owned();
    while taken(&nick) {
        nick = if nick.len() < directory::NICKLEN {
            format!("{nick}_")
        } else {
            format!("u{}", seq % 100_000)
        };
    }
    nick
}

/// The ISUPPORT tokens: the real limits of this server.
fn isupport(server: &str, filehost: Option<&str>) -> Vec<String> {
    let _ = server;
    let mut tokens: Vec<String> = [
        "AWAYLEN=200",
        "CASEMAPPING=ascii",
        "CHANLIMIT=#&:",
        "CHANMODES=b,,,mnt",
        "CHANNELLEN=64",
        "CHANTYPES=#&",
        "CHATHISTORY=100",
        // message-tags: the client tags acted on are typing (+typing, +draft/typing), reactions
        // (+draft/react, +draft/unreact) and replies (+draft/reply).
        "CLIENTTAGDENY=*,-draft/typing,-typing,-draft/react,-draft/unreact,-draft/reply",
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
    .collect();
    // Clients that know it upload files to the daemon (HTTP POST with the IRC credentials)
    // and put the link in a PRIVMSG, which then goes out as a Session attachment.
    if let Some(url) = filehost {
        tokens.push(format!("soju.im/FILEHOST={url}"));
        tokens.push(format!("draft/FILEHOST={url}"));
    }
    tokens
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
