//! The `&session` control channel and its `root` user (bitlbee-style): help, account,
//! identities, contacts, network, history. Every input gets an answer, a typo a suggestion.
//!
//! Recovery passwords are answered privately (a NOTICE to the user, never to the channel) and
//! command arguments are never logged.

use sessiond_api::client::looks_like_account_id;
use sessiond_api::v1::{
    BlockContactRequest, CreateIdentityRequest, GetIdentityRequest, GetNetworkStatusRequest,
    OpenConversationRequest, RebuildPathsRequest, RestoreIdentityRequest, SetContactHandleRequest,
    SetContactNameRequest, SetProfileRequest, UnblockContactRequest,
};
use tonic::{Code, Status};

use super::history;
use super::{Close, Conn};
use crate::directory::{valid_nick, ROOT};
use crate::line::Message;
use crate::split::{split_text, text_budget};

/// The top-level commands, for help and suggestions.
const COMMANDS: &[(&str, &str)] = &[
    ("help", "help [command]: this list, or more about one command"),
    ("account", "account: your identity and Account ID; account name <display name>: set the name others see"),
    ("contacts", "contacts [list] | contacts add <Account ID> [nick] | contacts rename <nick> <new nick> | contacts name <nick> <name> | contacts block <nick> | contacts unblock <nick>"),
    ("identities", "identities [list] | identities new <name> | identities restore <name> <13 words> (admin token only)"),
    ("network", "network [status] | network rebuild (admin token only)"),
    ("history", "history <nick or #channel> [count]: replay the last messages with someone or in a channel (at most 100)"),
    ("groups", "groups create <name, in \"quotes\" if it has spaces> [nick or Account ID…]: a new group (a channel) with those members invited; then /invite, /kick, /mode +o and /topic in its channel"),
    ("rooms", "rooms [list] | rooms join <room URL with ?public_key=> | rooms leave <#channel or URL>: community rooms, which are channels (/join #name <URL> works too)"),
    ("disappear", "disappear <nick> <duration: 30s, 5m, 12h, 1d> [after-read|after-send] | disappear <nick> off: disappearing messages"),
    ("send-file", "send-file <nick> <path>: send a file on the daemon's host as an attachment (admin token only)"),
];

/// What root says when another device of the account published device-group keys.
pub(super) const DEVICE_KEYS_NOTICE: &str = "Another device of your account has joined the new \
    device group: people may now send you messages in a new format that sessiond cannot read \
    yet. Those show here as 'cannot read this message here'; read them on your other device.";

const ADMIN_ONLY: &str = "that needs the admin token: log in with PASS <identity>:<admin token> \
                          (the admin token is in admin.token in the daemon's data dir), or use the \
                          sessiond command line on the host";

impl Conn {
    /// Says `text` from root to `to` (`&session` or the client's nick), split into lines.
    async fn root_say(&self, to: &str, text: &str) -> Result<(), Close> {
        let source = self.root_prefix();
        for part in split_text(text, text_budget(&source, "PRIVMSG", to)) {
            self.send(
                Message::new("PRIVMSG", vec![to.to_owned(), part]).with_source(source.clone()),
            )
            .await?;
        }
        Ok(())
    }

    /// One command said to root (in `&session` or privately); the answer goes to `reply_to`.
    pub(super) async fn control(&mut self, text: &str, reply_to: &str) -> Result<(), Close> {
        // "root: help" and "root, help" are how people address root in a channel.
        let text = text
            .strip_prefix("root:")
            .or_else(|| text.strip_prefix("root,"))
            .unwrap_or(text)
            .trim();
        let words: Vec<&str> = text.split_whitespace().collect();
        let Some(first) = words.first() else {
            return self
                .root_say(reply_to, "Say 'help' for the commands.")
                .await;
        };
        let command = first.to_ascii_lowercase();
        let args = &words[1..];
        let answer = match command.as_str() {
            "help" => Ok(help(args.first().copied())),
            "account" => self.cmd_account(args).await,
            "contacts" | "contact" => self.cmd_contacts(args).await,
            "identities" | "identity" => return self.cmd_identities(args, reply_to).await,
            "network" => self.cmd_network(args).await,
            "disappear" | "disappearing" => self.cmd_disappear(args).await,
            "rooms" | "room" | "communities" => self.cmd_rooms(args).await,
            "groups" | "group" => self.cmd_groups(text).await,
            "history" => return self.cmd_history(args, reply_to).await,
            "send-file" | "sendfile" => return self.cmd_send_file(text, reply_to).await,
            _ => Ok(unknown(&command, COMMANDS.iter().map(|c| c.0))),
        };
        let text = match answer {
            Ok(text) => text,
            Err(status) => explain(&status),
        };
        for line in text.lines() {
            self.root_say(reply_to, line).await?;
        }
        Ok(())
    }

    async fn cmd_account(&mut self, args: &[&str]) -> Result<String, Status> {
        let Some(s) = &self.session else {
            return Ok(String::new());
        };
        match args.first().map(|a| a.to_ascii_lowercase()).as_deref() {
            None => {
                let me = s
                    .client
                    .identities
                    .clone()
                    .get_identity(GetIdentityRequest {
                        name: s.identity.clone(),
                    })
                    .await?
                    .into_inner()
                    .identity
                    .unwrap_or_default();
                let mut out = format!(
                    "You are identity {} with Account ID {} (give it to people so they can write to you).",
                    s.identity, s.account_id
                );
                out.push_str(if me.configs_pulled {
                    "\nYour account's settings are in sync with your other devices (names, contacts, blocks, read positions)."
                } else {
                    "\nYour account's settings have not been read from the network yet; your changes wait until they have."
                });
                if me.other_device_keys {
                    out.push('\n');
                    out.push_str(DEVICE_KEYS_NOTICE);
                }
                Ok(out)
            }
            Some("name") => {
                let name = args[1..].join(" ");
                let r = s
                    .client
                    .identities
                    .clone()
                    .set_profile(SetProfileRequest {
                        name: s.identity.clone(),
                        display_name: name.clone(),
                    })
                    .await?;
                let shown = r
                    .into_inner()
                    .identity
                    .map(|i| i.display_name)
                    .unwrap_or(name);
                Ok(if shown.is_empty() {
                    "You announce no display name now.".into()
                } else {
                    format!("People you write to now see you as {shown:?}.")
                })
            }
            Some(other) => Ok(unknown(other, ["name"].into_iter())),
        }
    }

    async fn cmd_contacts(&mut self, args: &[&str]) -> Result<String, Status> {
        let sub = args.first().map(|a| a.to_ascii_lowercase());
        match sub.as_deref() {
            None | Some("list") => {
                let changes = match &mut self.session {
                    Some(s) => s.refresh_contacts().await?,
                    None => return Ok(String::new()),
                };
                let _ = self.announce_renames(changes).await;
                let Some(s) = &self.session else {
                    return Ok(String::new());
                };
                let all = s.dir.all();
                if all.is_empty() {
                    return Ok("No contacts yet: 'contacts add <Account ID> [nick]', or /msg an Account ID.".into());
                }
                let mut out = format!("{} contacts:", all.len());
                for (account, e) in all {
                    let name = [&e.name, &e.profile_name]
                        .into_iter()
                        .find(|n| !n.is_empty())
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default();
                    out.push_str(&format!("\n{} {account}{name}", e.nick));
                }
                Ok(out)
            }
            Some("add") => {
                let Some(account) = args.get(1).filter(|a| looks_like_account_id(a)) else {
                    return Ok("Usage: contacts add <Account ID> [nick] (an Account ID is 66 hex characters starting with 05)".into());
                };
                let account = account.to_ascii_lowercase();
                let Some(s) = &self.session else {
                    return Ok(String::new());
                };
                if let Some(nick) = args.get(2) {
                    if !valid_nick(nick) || nick.eq_ignore_ascii_case(ROOT) {
                        return Ok(format!("{nick:?} cannot be a nick: 1 to 30 letters, digits, _ or -, starting with a letter."));
                    }
                    s.client
                        .conversations
                        .clone()
                        .set_contact_handle(SetContactHandleRequest {
                            identity: s.identity.clone(),
                            account_id: account.clone(),
                            handle: (*nick).to_owned(),
                        })
                        .await?;
                }
                s.client
                    .conversations
                    .clone()
                    .open_conversation(OpenConversationRequest {
                        identity: s.identity.clone(),
                        account_id: account.clone(),
                    })
                    .await?;
                if let Some(s) = &mut self.session {
                    let changes = s.refresh_contacts().await?;
                    let _ = self.announce_renames(changes).await;
                }
                let nick = self.nick_of(&account).await;
                Ok(format!("Added {nick}: /msg {nick} to write to them."))
            }
            Some("rename") => {
                let (Some(old), Some(new)) = (args.get(1), args.get(2)) else {
                    return Ok("Usage: contacts rename <nick> <new nick>".into());
                };
                if !valid_nick(new) || new.eq_ignore_ascii_case(ROOT) {
                    return Ok(format!("{new:?} cannot be a nick: 1 to 30 letters, digits, _ or -, starting with a letter."));
                }
                let Some(account) = self.resolve(old).await else {
                    return Ok(format!(
                        "No contact is called {old}: 'contacts list' shows them."
                    ));
                };
                let Some(s) = &self.session else {
                    return Ok(String::new());
                };
                let r = s
                    .client
                    .conversations
                    .clone()
                    .set_contact_handle(SetContactHandleRequest {
                        identity: s.identity.clone(),
                        account_id: account.clone(),
                        handle: (*new).to_owned(),
                    })
                    .await;
                match r {
                    Ok(_) => {}
                    Err(status) if status.code() == Code::AlreadyExists => {
                        return Ok(format!("Another contact is already called {new}."));
                    }
                    Err(status) => return Err(status),
                }
                if let Some(s) = &mut self.session {
                    let changes = s.refresh_contacts().await?;
                    let _ = self.announce_renames(changes).await;
                }
                Ok(format!("{old} is now {new}."))
            }
            Some("name") => {
                let Some(nick) = args.get(1) else {
                    return Ok(
                        "Usage: contacts name <nick> <name> (an empty name clears it)".into(),
                    );
                };
                let Some(account) = self.resolve(nick).await else {
                    return Ok(format!(
                        "No contact is called {nick}: 'contacts list' shows them."
                    ));
                };
                let Some(s) = &self.session else {
                    return Ok(String::new());
                };
                let name = args[2..].join(" ");
                s.client
                    .conversations
                    .clone()
                    .set_contact_name(SetContactNameRequest {
                        identity: s.identity.clone(),
                        account_id: account,
                        name: name.clone(),
                    })
                    .await?;
                Ok(format!("{nick}'s name is now {name:?}."))
            }
            Some(verb @ ("block" | "unblock")) => {
                let Some(nick) = args.get(1) else {
                    return Ok(format!("Usage: contacts {verb} <nick or Account ID>"));
                };
                let Some(account) = self.resolve(nick).await else {
                    return Ok(format!(
                        "No contact is called {nick}: 'contacts list' shows them."
                    ));
                };
                let Some(s) = &self.session else {
                    return Ok(String::new());
                };
                let mut convs = s.client.conversations.clone();
                let (identity, account_id) = (s.identity.clone(), account);
                if verb == "block" {
                    convs
                        .block_contact(BlockContactRequest {
                            identity,
                            account_id,
                        })
                        .await?;
                    Ok(format!(
                        "{nick} is blocked: their messages are not shown (on your other devices too)."
                    ))
                } else {
                    convs
                        .unblock_contact(UnblockContactRequest {
                            identity,
                            account_id,
                        })
                        .await?;
                    Ok(format!("{nick} is no longer blocked."))
                }
            }
            Some(other) => Ok(unknown(
                other,
                ["list", "add", "rename", "name", "block", "unblock"].into_iter(),
            )),
        }
    }

    async fn cmd_identities(&mut self, args: &[&str], reply_to: &str) -> Result<(), Close> {
        let Some(s) = &self.session else {
            return Ok(());
        };
        let client = s.client.clone();
        let sub = args.first().map(|a| a.to_ascii_lowercase());
        if matches!(sub.as_deref(), Some("new") | Some("restore")) && !s.admin {
            // The daemon would refuse it; say why before the user types a recovery password.
            return self
                .root_say(reply_to, &format!("Sorry, {ADMIN_ONLY}."))
                .await;
        }
        let answer: Result<String, Status> = match sub.as_deref() {
            None | Some("list") => client.all_identities().await.map(|r| {
                let ids = r;
                let mut out = format!("{} identities:", ids.len());
                for i in ids {
                    out.push_str(&format!("\n{} {}", i.name, i.account_id));
                }
                out
            }),
            Some("new") => {
                let Some(name) = args.get(1) else {
                    return self
                        .root_say(reply_to, "Usage: identities new <name>")
                        .await;
                };
                match client
                    .identities
                    .clone()
                    .create_identity(CreateIdentityRequest {
                        name: (*name).to_owned(),
                    })
                    .await
                {
                    Ok(r) => {
                        let r = r.into_inner();
                        let account = r.identity.map(|i| i.account_id).unwrap_or_default();
                        // The recovery password goes to the user alone, never to a channel.
                        self.root_notice(&format!(
                            "The recovery password of {name} (write it down, it is shown once; whoever holds it holds the account): {}",
                            r.recovery_password
                        ))
                        .await?;
                        Ok(format!(
                            "Created identity {name} with Account ID {account}; its recovery password was sent to you privately. Log in as it with PASS {name}:<token>."
                        ))
                    }
                    Err(status) => Err(status),
                }
            }
            Some("restore") => {
                let (Some(name), words) = (args.get(1), &args[2.min(args.len())..]) else {
                    return self
                        .root_say(reply_to, "Usage: identities restore <name> <13 words>")
                        .await;
                };
                if words.len() != 13 {
                    return self
                        .root_say(
                            reply_to,
                            &format!("A recovery password is 13 words; that was {}.", words.len()),
                        )
                        .await;
                }
                client
                    .identities
                    .clone()
                    .restore_identity(RestoreIdentityRequest {
                        name: (*name).to_owned(),
                        recovery_password: words.join(" "),
                    })
                    .await
                    .map(|r| {
                        let account = r
                            .into_inner()
                            .identity
                            .map(|i| i.account_id)
                            .unwrap_or_default();
                        format!("Restored identity {name} with Account ID {account}.")
                    })
            }
            Some(other) => Ok(unknown(other, ["list", "new", "restore"].into_iter())),
        };
        let text = match answer {
            Ok(t) => t,
            Err(status) => explain(&status),
        };
        for line in text.lines() {
            self.root_say(reply_to, line).await?;
        }
        Ok(())
    }

    async fn cmd_network(&mut self, args: &[&str]) -> Result<String, Status> {
        let Some(s) = &self.session else {
            return Ok(String::new());
        };
        match args.first().map(|a| a.to_ascii_lowercase()).as_deref() {
            None | Some("status") => {
                let st = s
                    .client
                    .network
                    .clone()
                    .get_network_status(GetNetworkStatusRequest {})
                    .await?
                    .into_inner()
                    .status
                    .unwrap_or_default();
                let mut out = format!(
                    "Network {}: {}, {} snodes known, {} paths, {} swarms cached.",
                    st.network,
                    if st.online { "online" } else { "offline" },
                    st.pool_size,
                    st.paths.len(),
                    st.swarm_cache_size
                );
                for p in &st.paths {
                    let hops: Vec<&str> = p.hops.iter().map(|h| h.address.as_str()).collect();
                    out.push_str(&format!(
                        "\npath {}: {} ({} ok, {} failed, {} strikes)",
                        p.id,
                        hops.join(" -> "),
                        p.requests_ok,
                        p.requests_failed,
                        p.strikes
                    ));
                }
                if !st.last_error.is_empty() {
                    out.push_str(&format!("\nlast error: {}", st.last_error));
                }
                Ok(out)
            }
            Some("rebuild") if !s.admin => Ok(format!("Sorry, {ADMIN_ONLY}.")),
            Some("rebuild") => {
                let r = s
                    .client
                    .network
                    .clone()
                    .rebuild_paths(RebuildPathsRequest {})
                    .await?
                    .into_inner();
                Ok(format!(
                    "Dropped {} paths; new ones are being built ('network status' shows them).",
                    r.dropped_paths
                ))
            }
            Some(other) => Ok(unknown(other, ["status", "rebuild"].into_iter())),
        }
    }

    /// `send-file <nick> <path>`: uploads the file (read by the daemon, so admin only: an
    /// identity's token must not read the daemon's own files) and sends it as an attachment.
    async fn cmd_send_file(&mut self, text: &str, reply_to: &str) -> Result<(), Close> {
        // The path is the rest of the line after the nick, spaces and all.
        let rest = text
            .split_once(char::is_whitespace)
            .map_or("", |r| r.1)
            .trim_start();
        let (nick, path) = rest
            .split_once(char::is_whitespace)
            .map_or((rest, ""), |(n, p)| (n, p.trim()));
        if nick.is_empty() || path.is_empty() {
            return self
                .root_say(reply_to, "Usage: send-file <nick> <path>")
                .await;
        }
        if !self.session.as_ref().is_some_and(|s| s.admin) {
            return self
                .root_say(reply_to, &format!("Sorry, {ADMIN_ONLY}."))
                .await;
        }
        let Some(account) = self.resolve(nick).await else {
            return self
                .root_say(
                    reply_to,
                    &format!("No contact is called {nick}: 'contacts list' shows them."),
                )
                .await;
        };
        let Some(s) = &self.session else {
            return Ok(());
        };
        let answer = match send_file(&s.client, &s.identity, &account, path).await {
            Ok(size) => format!("Sent {path} ({}) to {nick}.", super::chat::human_size(size)),
            Err(why) => format!("Cannot send {path}: {why}"),
        };
        self.root_say(reply_to, &answer).await
    }

    async fn cmd_history(&mut self, args: &[&str], reply_to: &str) -> Result<(), Close> {
        let Some(nick) = args.first() else {
            return self
                .root_say(reply_to, "Usage: history <nick> [count]")
                .await;
        };
        let count = match args.get(1).map(|c| c.parse::<usize>()) {
            None => 20,
            Some(Ok(n)) if n > 0 => n.min(history::MAX_LIMIT),
            Some(_) => {
                return self
                    .root_say(reply_to, "The count is a number from 1 to 100.")
                    .await;
            }
        };
        let channel = nick.starts_with('#').then(|| self.channel(nick)).flatten();
        let account = match channel {
            Some(c) => Some(c.conversation),
            None if nick.starts_with('#') => None,
            None => self.resolve(nick).await,
        };
        let Some(account) = account else {
            return self
                .root_say(
                    reply_to,
                    &format!("No contact or channel is called {nick}: 'contacts list' shows them."),
                )
                .await;
        };
        let Some(s) = &self.session else {
            return Ok(());
        };
        let page = history::messages(&s.client, &s.identity, &account, 0, 0, true, count).await;
        match page {
            Ok((events, _)) if events.is_empty() => {
                self.root_say(reply_to, &format!("No messages with {nick} yet."))
                    .await
            }
            Ok((events, _)) => {
                let target = match self.channel_of(&account) {
                    Some(c) => c.name,
                    None => self.nick_of(&account).await,
                };
                self.send_batch("chathistory", &target, &events).await
            }
            Err(status) => self.root_say(reply_to, &explain(&status)).await,
        }
    }
}

/// The help text, or the help of one command.
fn help(topic: Option<&str>) -> String {
    if let Some(topic) = topic {
        let topic = topic.to_ascii_lowercase();
        if let Some((_, text)) = COMMANDS.iter().find(|(name, _)| *name == topic) {
            return (*text).to_owned();
        }
        return unknown(&topic, COMMANDS.iter().map(|c| c.0));
    }
    let mut out = String::from("Commands (say them here, or /msg root):");
    for (_, text) in COMMANDS {
        out.push('\n');
        out.push_str(text);
    }
    out.push_str("\nTo write to someone: /msg <nick> or /msg <Account ID>.");
    out
}

/// The answer to an unknown word: the closest known one, and where help is.
fn unknown<'a>(word: &str, known: impl Iterator<Item = &'a str>) -> String {
    let best = known
        .map(|k| (edit_distance(word, k), k))
        .min()
        .filter(|(d, k)| *d <= 2.max(k.len() / 3));
    match best {
        Some((_, k)) => {
            format!("Unknown command {word:?}. Did you mean {k:?}? Say 'help' for the list.")
        }
        None => format!("Unknown command {word:?}. Say 'help' for the list."),
    }
}

/// A daemon refusal in words, with the admin-token explanation where it applies.
fn explain(status: &Status) -> String {
    match status.code() {
        Code::PermissionDenied => format!("Sorry, {ADMIN_ONLY}."),
        _ => format!("Sorry: {}.", crate::err::status_text(status)),
    }
}

/// Levenshtein distance (short words only).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Streams the file at `path` into AttachmentService.Upload and sends it to `account`; the
/// bytes sent, or why not (for a person).
pub(super) async fn send_file(
    client: &sessiond_api::client::Client,
    identity: &str,
    account: &str,
    path: &str,
) -> Result<u64, String> {
    use sessiond_api::v1::{upload_request, SendMessageRequest, UploadMetadata, UploadRequest};
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| e.to_string())?;
    let size = file.metadata().await.map_err(|e| e.to_string())?.len();
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let first = UploadRequest {
        part: Some(upload_request::Part::Metadata(UploadMetadata {
            identity: identity.to_owned(),
            file_name: name,
            size,
            ..Default::default()
        })),
    };
    // Owned by the upload call below: ends at the end of the file or when the call drops rx.
    let reader = tokio::spawn(async move {
        if tx.send(first).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match file.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let chunk = UploadRequest {
                        part: Some(upload_request::Part::Chunk(buf[..n].to_vec())),
                    };
                    if tx.send(chunk).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let uploaded = client
        .attachments
        .clone()
        .upload(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    reader.abort();
    let attachment = uploaded
        .map_err(|s| crate::err::status_text(&s))?
        .into_inner()
        .attachment
        .ok_or("the daemon answered without the attachment")?;
    client
        .messages
        .clone()
        .send_message(SendMessageRequest {
            identity: identity.to_owned(),
            recipient: account.to_owned(),
            attachment_ids: vec![attachment.id],
            ..Default::default()
        })
        .await
        .map_err(|s| crate::err::status_text(&s))?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert!(unknown("contcts", COMMANDS.iter().map(|c| c.0)).contains("\"contacts\""));
        assert!(unknown("hlep", COMMANDS.iter().map(|c| c.0)).contains("\"help\""));
        assert!(!unknown("xyzzy", COMMANDS.iter().map(|c| c.0)).contains("Did you mean"));
        assert!(help(None).contains("contacts add"));
        assert!(help(Some("netwrk")).contains("\"network\""));
    }
}
