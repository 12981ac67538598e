//! The commands that keep IRC clients content: JOIN/PART/NAMES/TOPIC/LIST of the one channel,
//! MODE, WHO, WHOIS (which shows a contact's Account ID), ISON, USERHOST, AWAY, VERSION.

use sessiond_api::client::{looks_like_account_id, looks_like_blinded_id};

use super::register::{CONTROL, VERSION};
use super::{Close, Conn};
use crate::directory::{contact_user, ROOT};
use crate::line::Message;
use crate::numeric::*;

const TOPIC: &str = "sessiond control channel: say 'help'";

impl Conn {
    /// Joins `&session`: JOIN, topic, names.
    pub(super) async fn join_control(&mut self) -> Result<(), Close> {
        let prefix = self.my_prefix();
        if let Some(s) = &mut self.session {
            s.joined = true;
        }
        self.send(Message::new("JOIN", vec![CONTROL.into()]).with_source(prefix))
            .await?;
        self.numeric(RPL_TOPIC, &[CONTROL, TOPIC]).await?;
        self.names_reply().await
    }

    async fn names_reply(&mut self) -> Result<(), Close> {
        let me = self.me();
        self.numeric(RPL_NAMREPLY, &["=", CONTROL, &format!("@{ROOT} {me}")])
            .await?;
        self.numeric(RPL_ENDOFNAMES, &[CONTROL, "End of /NAMES list"])
            .await
    }

    fn joined(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.joined)
    }

    /// `JOIN <channels> [keys]`: `&session`; `JOIN 0` leaves it; a `#channel` of a group or
    /// room shows it (accepting a group's invitation); a community room's URL, as the channel or
    /// as its key, joins the room.
    pub(super) async fn join(&mut self, msg: &Message) -> Result<(), Close> {
        let keys: Vec<String> = msg
            .param(1)
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect();
        let chans: Vec<String> = msg
            .param(0)
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect();
        for (i, chan) in chans.iter().enumerate() {
            let chan = chan.as_str();
            let key = keys.get(i).map(String::as_str).unwrap_or_default();
            if chan == "0" {
                if self.joined() {
                    self.leave_control("Left all channels").await?;
                }
            } else if chan.eq_ignore_ascii_case(CONTROL) {
                if !self.joined() {
                    self.join_control().await?;
                }
            } else if let Some(url) = super::rooms::room_url_in(chan) {
                // irssi and WeeChat put '#' before a name without a channel prefix.
                self.join_room_url(chan, url).await?;
            } else if chan.starts_with('#') && self.join_channel(chan).await? {
            } else if !super::rooms::valid_channel_name(chan) {
                self.numeric(
                    ERR_BADCHANMASK,
                    &[
                        chan,
                        "Bad channel name: channels here are #name (groups and community rooms) and &session",
                    ],
                )
                .await?;
            } else if super::rooms::room_url_in(key).is_some() {
                self.join_room_url(chan, key).await?;
            } else {
                self.numeric(
                    ERR_NOSUCHCHANNEL,
                    &[
                        chan,
                        "No such channel: groups you are in or invited to are channels; to join a community room, /join #name <room URL with ?public_key=> (or say 'rooms join <URL>' in &session)",
                    ],
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn leave_control(&mut self, reason: &str) -> Result<(), Close> {
        let prefix = self.my_prefix();
        if let Some(s) = &mut self.session {
            s.joined = false;
        }
        self.send(Message::new("PART", vec![CONTROL.into(), reason.to_owned()]).with_source(prefix))
            .await
    }

    /// `PART <channels> [reason]`.
    pub(super) async fn part(&mut self, msg: &Message) -> Result<(), Close> {
        for chan in msg.param(0).unwrap_or_default().split(',') {
            if chan.eq_ignore_ascii_case(CONTROL) && self.joined() {
                let reason = msg.param(1).unwrap_or("Leaving").to_owned();
                self.leave_control(&reason).await?;
            } else if chan.eq_ignore_ascii_case(CONTROL) {
                self.numeric(ERR_NOTONCHANNEL, &[chan, "You're not on that channel"])
                    .await?;
            } else if chan.starts_with('#') && self.part_channel(chan).await? {
            } else {
                self.numeric(ERR_NOSUCHCHANNEL, &[chan, "No such channel"])
                    .await?;
            }
        }
        Ok(())
    }

    /// `NAMES [channel]`.
    pub(super) async fn names(&mut self, msg: &Message) -> Result<(), Close> {
        match msg.param(0) {
            Some(c) if c.starts_with('#') => self.channel_names(c).await,
            Some(c) if !c.eq_ignore_ascii_case(CONTROL) => {
                self.numeric(RPL_ENDOFNAMES, &[c, "End of /NAMES list"])
                    .await
            }
            _ => self.names_reply().await,
        }
    }

    /// `TOPIC <channel> [topic]`: the topic is fixed.
    pub(super) async fn topic(&mut self, msg: &Message) -> Result<(), Close> {
        let chan = msg.param(0).unwrap_or_default().to_owned();
        if chan.starts_with('#') && self.channel_topic(&chan, msg.param(1)).await? {
            return Ok(());
        }
        if !chan.eq_ignore_ascii_case(CONTROL) {
            return self
                .numeric(ERR_NOSUCHCHANNEL, &[&chan, "No such channel"])
                .await;
        }
        if msg.params.len() > 1 {
            return self
                .numeric(
                    ERR_CHANOPRIVSNEEDED,
                    &[CONTROL, "The topic of &session is fixed"],
                )
                .await;
        }
        self.numeric(RPL_TOPIC, &[CONTROL, TOPIC]).await
    }

    /// `LIST`: `&session`, and the groups and rooms the user is in.
    pub(super) async fn list(&mut self) -> Result<(), Close> {
        self.numeric(RPL_LISTSTART, &["Channel", "Users  Name"])
            .await?;
        self.numeric(RPL_LIST, &[CONTROL, "2", TOPIC]).await?;
        let chans: Vec<_> = self
            .session
            .as_ref()
            .map(|s| s.channels.all().filter(|c| c.joined).cloned().collect())
            .unwrap_or_default();
        for c in chans {
            let users = c.members.len().max(1).to_string();
            self.numeric(RPL_LIST, &[&c.name, &users, &c.topic()])
                .await?;
        }
        self.numeric(RPL_LISTEND, &["End of /LIST"]).await
    }

    /// `MODE <target> [modes]`: no modes can be changed; queries are answered.
    pub(super) async fn mode(&mut self, msg: &Message) -> Result<(), Close> {
        let target = msg.param(0).unwrap_or_default().to_owned();
        if target.starts_with('#') {
            if let (Some("+o"), Some(nick)) = (msg.param(1), msg.param(2)) {
                let nick = nick.to_owned();
                if self
                    .channel_member_op(super::channels::MemberOp::Op, &target, &nick)
                    .await?
                {
                    return Ok(());
                }
            } else if let Some(c) = self.channel(&target) {
                return match msg.param(1) {
                    None => self.numeric(RPL_CHANNELMODEIS, &[&c.name, c.modes()]).await,
                    Some("b") | Some("+b") => {
                        self.numeric(RPL_ENDOFBANLIST, &[&c.name, "End of channel ban list"])
                            .await
                    }
                    Some(_) => {
                        self.numeric(
                            ERR_CHANOPRIVSNEEDED,
                            &[&c.name, "Only +o (make a member a group admin) can be set"],
                        )
                        .await
                    }
                };
            }
        }
        if target.eq_ignore_ascii_case(CONTROL) {
            return match msg.param(1) {
                None => self.numeric(RPL_CHANNELMODEIS, &[CONTROL, "+nt"]).await,
                Some("b") | Some("+b") => {
                    self.numeric(RPL_ENDOFBANLIST, &[CONTROL, "End of channel ban list"])
                        .await
                }
                Some(_) => {
                    self.numeric(ERR_CHANOPRIVSNEEDED, &[CONTROL, "Channel modes are fixed"])
                        .await
                }
            };
        }
        if target.eq_ignore_ascii_case(&self.me()) {
            return match msg.param(1) {
                None => self.numeric(RPL_UMODEIS, &["+i"]).await,
                // Setting user modes changes nothing; say what they are.
                Some(_) => self.numeric(RPL_UMODEIS, &["+i"]).await,
            };
        }
        if target.starts_with('&') || target.starts_with('#') {
            return self
                .numeric(ERR_NOSUCHCHANNEL, &[&target, "No such channel"])
                .await;
        }
        self.numeric(ERR_USERSDONTMATCH, &["Cant change mode for other users"])
            .await
    }

    /// (nick, user, host, realname) of root, the client itself, or a contact by nick or
    /// Account ID; `None` if unknown.
    pub(super) async fn lookup_person(
        &mut self,
        who: &str,
    ) -> Option<(String, String, String, String, Option<String>)> {
        let server = self.srv.config.server_name.clone();
        if who.eq_ignore_ascii_case(ROOT) {
            return Some((
                ROOT.into(),
                ROOT.into(),
                server,
                "sessiond control user".into(),
                None,
            ));
        }
        if who.eq_ignore_ascii_case(&self.me()) {
            let s = self.session.as_ref()?;
            return Some((
                self.me(),
                s.identity.clone(),
                server,
                self.realname.clone(),
                Some(s.account_id.clone()),
            ));
        }
        let account = self.resolve(who).await?;
        let nick = self.nick_of(&account).await;
        let s = self.session.as_ref()?;
        let entry = s.dir.entry(&account).cloned().unwrap_or_default();
        let real = [&entry.name, &entry.profile_name]
            .into_iter()
            .find(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| nick.clone());
        Some((
            nick,
            contact_user(&account),
            "session".into(),
            real,
            Some(account),
        ))
    }

    /// `WHOIS [server] <nick>`: shows the Account ID (330) and the name.
    pub(super) async fn whois(&mut self, msg: &Message) -> Result<(), Close> {
        let who = msg.params.last().cloned().unwrap_or_default();
        let server = self.srv.config.server_name.clone();
        match self.lookup_person(&who).await {
            Some((nick, user, host, real, account)) => {
                self.numeric(RPL_WHOISUSER, &[&nick, &user, &host, "*", &real])
                    .await?;
                self.numeric(
                    RPL_WHOISSERVER,
                    &[&nick, &server, "Session network via sessiond"],
                )
                .await?;
                if let Some(account) = account {
                    let what = if looks_like_blinded_id(&account) {
                        "is the blinded community ID (the Account ID stays hidden)"
                    } else {
                        "is the Session Account ID"
                    };
                    self.numeric(RPL_WHOISACCOUNT, &[&nick, &account, what])
                        .await?;
                }
                self.numeric(RPL_ENDOFWHOIS, &[&nick, "End of /WHOIS list"])
                    .await
            }
            None => {
                self.numeric(ERR_NOSUCHNICK, &[&who, "No such nick"])
                    .await?;
                self.numeric(RPL_ENDOFWHOIS, &[&who, "End of /WHOIS list"])
                    .await
            }
        }
    }

    /// `WHO <mask>`: the channel's two members, or one person.
    pub(super) async fn who(&mut self, msg: &Message) -> Result<(), Close> {
        let mask = msg.param(0).unwrap_or("*").to_owned();
        if mask.starts_with('#') {
            return self.channel_who(&mask).await;
        }
        let people: Vec<String> = if mask.eq_ignore_ascii_case(CONTROL) {
            vec![ROOT.into(), self.me()]
        } else {
            vec![mask.clone()]
        };
        let server = self.srv.config.server_name.clone();
        for who in people {
            if let Some((nick, user, host, real, _)) = self.lookup_person(&who).await {
                let chan = if mask.eq_ignore_ascii_case(CONTROL) {
                    CONTROL
                } else {
                    "*"
                };
                let flags = if nick == ROOT { "H@" } else { "H" };
                self.numeric(
                    RPL_WHOREPLY,
                    &[
                        chan,
                        &user,
                        &host,
                        &server,
                        &nick,
                        flags,
                        &format!("0 {real}"),
                    ],
                )
                .await?;
            }
        }
        self.numeric(RPL_ENDOFWHO, &[&mask, "End of /WHO list"])
            .await
    }

    /// `ISON <nicks>`: root, yourself and every known contact are "on".
    pub(super) async fn ison(&mut self, msg: &Message) -> Result<(), Close> {
        let mut on = Vec::new();
        for nick in msg.params.iter().flat_map(|p| p.split(' ')) {
            if nick.is_empty() {
                continue;
            }
            let known = nick.eq_ignore_ascii_case(ROOT)
                || nick.eq_ignore_ascii_case(&self.me())
                || self
                    .session
                    .as_ref()
                    .is_some_and(|s| s.dir.account(nick).is_some());
            if known {
                on.push(nick.to_owned());
            }
        }
        self.numeric(RPL_ISON, &[&on.join(" ")]).await
    }

    /// `USERHOST <nicks>`: `nick=+user@host`, with `-` instead of `+` for someone away (only the
    /// client itself can be: Session has no presence).
    pub(super) async fn userhost(&mut self, msg: &Message) -> Result<(), Close> {
        let mut replies = Vec::new();
        for nick in msg.params.iter().take(5) {
            if let Some((nick, user, host, _, _)) = self.lookup_person(nick).await {
                let away =
                    nick == self.me() && self.session.as_ref().is_some_and(|s| s.away.is_some());
                let here = if away { '-' } else { '+' };
                replies.push(format!("{nick}={here}{user}@{host}"));
            }
        }
        self.numeric(RPL_USERHOST, &[&replies.join(" ")]).await
    }

    /// `AWAY [message]`.
    pub(super) async fn away(&mut self, msg: &Message) -> Result<(), Close> {
        let text = msg.param(0).filter(|t| !t.is_empty()).map(str::to_owned);
        let away = text.is_some();
        if let Some(s) = &mut self.session {
            s.away = text;
        }
        if away {
            self.numeric(RPL_NOWAWAY, &["You have been marked as being away"])
                .await
        } else {
            self.numeric(RPL_UNAWAY, &["You are no longer marked as being away"])
                .await
        }
    }

    /// `VERSION`.
    pub(super) async fn version(&mut self) -> Result<(), Close> {
        let server = self.srv.config.server_name.clone();
        self.numeric(
            RPL_VERSION,
            &[VERSION, &server, "IRC to the Session network"],
        )
        .await
    }

    /// The Account ID a target names: a full Account ID, or a contact's nick (the contacts are
    /// reloaded once if the nick is unknown).
    pub(super) async fn resolve(&mut self, target: &str) -> Option<String> {
        if looks_like_account_id(target) || looks_like_blinded_id(target) {
            return Some(target.to_ascii_lowercase());
        }
        let s = self.session.as_mut()?;
        if let Some(a) = s.dir.account(target) {
            return Some(a.to_owned());
        }
        let changes = s.refresh_contacts().await.unwrap_or_default();
        let found = s.dir.account(target).map(str::to_owned);
        self.announce_renames(changes).await.ok()?;
        found
    }

    /// NICK lines for contacts whose handle changed.
    pub(super) async fn announce_renames(
        &mut self,
        changes: Vec<(String, String, String)>,
    ) -> Result<(), Close> {
        for (account, old, new) in changes {
            let source = format!("{old}!{}@session", contact_user(&account));
            self.send(Message::new("NICK", vec![new]).with_source(source))
                .await?;
        }
        Ok(())
    }
}
