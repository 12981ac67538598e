//! People as nicks: the contacts of one identity by handle (their IRC nick) and by Account ID.
//!
//! Handles come from the daemon (`Contact.handle`, unique per identity, case-insensitive); nicks
//! are compared with CASEMAPPING=ascii. A contact the daemon has not named yet gets the same
//! fallback the daemon would start from: `s` and the start of its Account ID.

use std::collections::HashMap;

use sessiond_api::v1::Contact;

/// The control user's nick.
pub const ROOT: &str = "root";
/// The longest nick (NICKLEN), the same as the longest contact handle.
pub const NICKLEN: usize = 30;

/// What the directory knows of one contact.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// The nick: the contact's handle (or the fallback).
    pub nick: String,
    /// The local name the user gave it.
    pub name: String,
    /// The name it announced.
    pub profile_name: String,
}

/// The contacts of one identity, by Account ID and by lower-cased nick.
#[derive(Debug, Default)]
pub struct Directory {
    by_account: HashMap<String, Entry>,
    by_nick: HashMap<String, String>,
}

impl Directory {
    /// Replaces the contents with `contacts` (from ListContacts). Returns the nick changes as
    /// (Account ID, old nick, new nick).
    pub fn load(&mut self, contacts: Vec<Contact>) -> Vec<(String, String, String)> {
        let mut changes = Vec::new();
        for c in contacts {
            if let Some((old, new)) = self.upsert(&c.account_id, &c.handle, c.name, c.profile_name)
            {
                changes.push((c.account_id, old, new));
            }
        }
        changes
    }

    /// Adds or updates one contact; an empty `handle` keeps the known nick (or the fallback).
    /// Returns (old nick, new nick) if a known contact's nick changed.
    pub fn upsert(
        &mut self,
        account_id: &str,
        handle: &str,
        name: String,
        profile_name: String,
    ) -> Option<(String, String)> {
        let known = self.by_account.get(account_id).map(|e| e.nick.clone());
        let nick = if handle.is_empty() {
            known.clone().unwrap_or_else(|| fallback_nick(account_id))
        } else {
            handle.to_owned()
        };
        if let Some(old) = &known {
            if !old.eq_ignore_ascii_case(&nick) {
                self.by_nick.remove(&old.to_ascii_lowercase());
            }
        }
        self.by_nick
            .insert(nick.to_ascii_lowercase(), account_id.to_owned());
        self.by_account.insert(
            account_id.to_owned(),
            Entry {
                nick: nick.clone(),
                name,
                profile_name,
            },
        );
        match known {
            Some(old) if old != nick => Some((old, nick)),
            _ => None,
        }
    }

    /// The nick of `account_id`, if it is a known contact.
    pub fn nick(&self, account_id: &str) -> Option<&str> {
        self.by_account.get(account_id).map(|e| e.nick.as_str())
    }

    /// What is known of `account_id`.
    pub fn entry(&self, account_id: &str) -> Option<&Entry> {
        self.by_account.get(account_id)
    }

    /// The Account ID a nick names (case-insensitively), if any.
    pub fn account(&self, nick: &str) -> Option<&str> {
        self.by_nick
            .get(&nick.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Every known contact as (Account ID, entry), sorted by nick.
    pub fn all(&self) -> Vec<(&str, &Entry)> {
        let mut v: Vec<_> = self
            .by_account
            .iter()
            .map(|(a, e)| (a.as_str(), e))
            .collect();
        v.sort_by_key(|(_, e)| e.nick.to_ascii_lowercase());
        v
    }
}

/// `s` and the first eight hex digits after `05`: what the daemon starts a nameless contact's
/// handle from.
pub fn fallback_nick(account_id: &str) -> String {
    let start: String = account_id.chars().skip(2).take(8).collect();
    format!("s{start}")
}

/// The user part of a contact's `nick!user@host`: the first ten characters of its Account ID.
pub fn contact_user(account_id: &str) -> String {
    account_id.chars().take(10).collect()
}

/// True if `nick` is a valid IRC nick here: 1 to NICKLEN characters, a letter or one of
/// ``[]\`_^{|}`` first, then letters, digits and ``-[]\`_^{|}``.
pub fn valid_nick(nick: &str) -> bool {
    let special = |c: char| "[]\\`_^{|}".contains(c);
    let mut chars = nick.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || special(c) => {}
        _ => return false,
    }
    nick.len() <= NICKLEN && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || special(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(n: u8) -> String {
        format!("05{}", format!("{n:02x}").repeat(32))
    }

    #[test]
    fn nicks_map_both_ways_and_follow_renames() {
        let mut d = Directory::default();
        let changes = d.load(vec![Contact {
            account_id: acct(1),
            handle: "Alice".into(),
            ..Default::default()
        }]);
        assert!(changes.is_empty());
        assert_eq!(d.account("alice"), Some(acct(1).as_str()));
        assert_eq!(d.nick(&acct(1)), Some("Alice"));
        assert_eq!(
            d.upsert(&acct(1), "ally", String::new(), String::new()),
            Some(("Alice".into(), "ally".into()))
        );
        assert_eq!(d.account("alice"), None);
        assert_eq!(d.account("ALLY"), Some(acct(1).as_str()));
        // No handle yet: the fallback, kept until the daemon names it.
        assert_eq!(d.upsert(&acct(2), "", String::new(), String::new()), None);
        assert_eq!(d.nick(&acct(2)), Some("s02020202"));
        assert_eq!(d.upsert(&acct(2), "", String::new(), String::new()), None);
        assert_eq!(d.all().len(), 2);
    }

    #[test]
    fn nick_validity() {
        for ok in ["a", "alice", "Bob-2", "[x]", "s05ab", &"n".repeat(30)] {
            assert!(valid_nick(ok), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "-a",
            "a b",
            "&s",
            "#c",
            "é",
            &"n".repeat(31),
            "a:b",
            "a!b",
        ] {
            assert!(!valid_nick(bad), "{bad}");
        }
    }
}
