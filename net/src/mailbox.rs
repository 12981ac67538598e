//! Member-sticky retrieve: a [`Mailbox`] keeps, for one account, the swarm member it reads
//! from, a `last_hash` per (namespace, member), and the hashes already handed out.
//!
//! Swarm members hold messages in the order they reached each of them (replication reorders),
//! so a `last_hash` means something only on the member that gave it. The mailbox sticks to one
//! member; when it must switch (the member failed, left the swarm, or a 421 moved the account),
//! it reads the new member from that member's own cursor, or from the start if it has none, and
//! drops the messages it already handed out. Across a switch nothing is skipped (every member
//! is read from its own position) and nothing repeats (seen hashes are remembered until their
//! messages expire, at most [`MAX_SEEN`] per namespace).
//!
//! The caller owns the mailbox: [`NetClient::poll`](crate::NetClient::poll) reads with it and
//! returns a [`Poll`]; [`Mailbox::advance`] moves the cursors once the caller has kept the
//! messages. A caller that fails to keep them simply polls again and gets them again.

use std::collections::HashMap;

use session_proto::storage_rpc::{RetrievedMessage, UserPubkey};

use super::err::NetError;
use super::snode::Snode;

/// Hashes remembered per namespace to drop repeats after a member switch. Beyond it the ones
/// expiring first are forgotten (a mailbox that large re-reads rarely: switches are rare).
pub const MAX_SEEN: usize = 20_000;

/// Cursors over one account's namespaces. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Mailbox {
    account: UserPubkey,
    member: Option<Snode>,
    cursors: HashMap<(i16, [u8; 32]), String>,
    seen: HashMap<i16, HashMap<String, u64>>,
}

/// What one [`NetClient::poll`](crate::NetClient::poll) got.
#[derive(Debug, Clone)]
pub struct Poll {
    /// The member that answered.
    pub member: Snode,
    /// One entry per namespace asked for, in the order asked.
    pub namespaces: Vec<NamespacePoll>,
    /// The network time of the poll, ms.
    pub at_ms: u64,
}

/// One namespace's part of a [`Poll`].
#[derive(Debug, Clone)]
pub struct NamespacePoll {
    /// The namespace.
    pub namespace: i16,
    /// Its new messages, or why this namespace failed (the others may still have succeeded).
    pub result: Result<Fetched, NetError>,
}

/// New messages of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Messages not handed out before, oldest first.
    pub messages: Vec<RetrievedMessage>,
    /// The member has more: poll again.
    pub more: bool,
    /// The member's last hash in this reply (the next cursor), if it returned any message.
    pub last_hash: Option<String>,
    /// Messages in the reply that had been handed out before (dropped).
    pub repeats: usize,
}

impl Mailbox {
    /// An empty mailbox for `account`: no member yet, every namespace read from the start.
    pub fn new(account: UserPubkey) -> Mailbox {
        Mailbox {
            account,
            member: None,
            cursors: HashMap::new(),
            seen: HashMap::new(),
        }
    }

    /// The account.
    pub fn account(&self) -> &UserPubkey {
        &self.account
    }

    /// The member read from, if one is chosen.
    pub fn member(&self) -> Option<&Snode> {
        self.member.as_ref()
    }

    /// Forgets the member: the next poll picks another one (the cursors are kept).
    pub fn switch_member(&mut self) {
        self.member = None;
    }

    /// The cursor of `namespace` on `member`.
    pub fn last_hash(&self, namespace: i16, member: &Snode) -> Option<&str> {
        self.cursors
            .get(&(namespace, member.ed25519))
            .map(String::as_str)
    }

    /// Keeps what `poll` fetched: its member becomes the sticky one, each successful
    /// namespace's cursor on it moves to the reply's last hash, and its messages count as
    /// handed out.
    pub fn advance(&mut self, poll: &Poll) {
        self.member = Some(poll.member.clone());
        for ns in &poll.namespaces {
            let Ok(f) = &ns.result else { continue };
            if let Some(h) = &f.last_hash {
                self.cursors
                    .insert((ns.namespace, poll.member.ed25519), h.clone());
            }
            let seen = self.seen.entry(ns.namespace).or_default();
            seen.retain(|_, expiry| *expiry > poll.at_ms);
            for m in &f.messages {
                seen.insert(m.hash.clone(), m.expiration);
            }
            if seen.len() > MAX_SEEN {
                let mut by_expiry: Vec<(u64, String)> =
                    seen.iter().map(|(h, e)| (*e, h.clone())).collect();
                by_expiry.sort_unstable();
                for (_, h) in by_expiry.into_iter().take(seen.len() - MAX_SEEN) {
                    seen.remove(&h);
                }
            }
        }
    }

    /// Splits a reply's messages of `namespace` into new ones and the number of repeats.
    pub(crate) fn sort_out(
        &self,
        namespace: i16,
        messages: Vec<RetrievedMessage>,
        more: bool,
    ) -> Fetched {
        let last_hash = messages.last().map(|m| m.hash.clone());
        let seen = self.seen.get(&namespace);
        let total = messages.len();
        let fresh: Vec<RetrievedMessage> = messages
            .into_iter()
            .filter(|m| seen.is_none_or(|s| !s.contains_key(&m.hash)))
            .collect();
        Fetched {
            repeats: total - fresh.len(),
            messages: fresh,
            more,
            last_hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snode::testing::node;
    use session_proto::storage_rpc::Base64Bytes;

    fn msg(h: &str, expiration: u64) -> RetrievedMessage {
        RetrievedMessage {
            hash: h.to_owned(),
            timestamp: 1,
            expiration,
            data: Base64Bytes(Vec::new()),
        }
    }

    fn poll(member: Snode, ns: i16, f: Fetched, at_ms: u64) -> Poll {
        Poll {
            member,
            namespaces: vec![NamespacePoll {
                namespace: ns,
                result: Ok(f),
            }],
            at_ms,
        }
    }

    #[test]
    fn cursors_are_per_member_and_repeats_dropped() {
        let mut mb = Mailbox::new(UserPubkey([5; 33]));
        let (a, b) = (node(1, 0), node(2, 0));
        let f = mb.sort_out(0, vec![msg("h1", 100), msg("h2", 100)], false);
        assert_eq!((f.messages.len(), f.repeats), (2, 0));
        mb.advance(&poll(a.clone(), 0, f, 10));
        assert_eq!(mb.member(), Some(&a));
        assert_eq!(mb.last_hash(0, &a), Some("h2"));
        assert_eq!(mb.last_hash(0, &b), None);
        assert_eq!(mb.last_hash(2, &a), None);
        // Another member, read from the start, in another order, with one new message.
        let f = mb.sort_out(
            0,
            vec![msg("h2", 100), msg("h3", 100), msg("h1", 100)],
            false,
        );
        assert_eq!(f.repeats, 2);
        assert_eq!(f.messages, vec![msg("h3", 100)]);
        assert_eq!(f.last_hash.as_deref(), Some("h1"));
        mb.advance(&poll(b.clone(), 0, f, 20));
        assert_eq!(mb.last_hash(0, &b), Some("h1"));
        assert_eq!(
            mb.last_hash(0, &a),
            Some("h2"),
            "the old member's cursor stays"
        );
        // Expired hashes are forgotten.
        mb.advance(&poll(b.clone(), 0, mb.sort_out(0, vec![], false), 200));
        assert_eq!(mb.sort_out(0, vec![msg("h1", 300)], false).repeats, 0);
        mb.switch_member();
        assert!(mb.member().is_none());
    }

    #[test]
    fn failed_namespaces_do_not_move() {
        let mut mb = Mailbox::new(UserPubkey([5; 33]));
        let a = node(1, 0);
        mb.advance(&Poll {
            member: a.clone(),
            namespaces: vec![NamespacePoll {
                namespace: 2,
                result: Err(NetError::Shutdown),
            }],
            at_ms: 1,
        });
        assert_eq!(mb.last_hash(2, &a), None);
    }

    #[test]
    fn seen_is_bounded() {
        let mut mb = Mailbox::new(UserPubkey([5; 33]));
        let many: Vec<RetrievedMessage> = (0..MAX_SEEN + 10)
            .map(|i| msg(&format!("h{i}"), 1000 + i as u64))
            .collect();
        let f = mb.sort_out(0, many, false);
        mb.advance(&poll(node(1, 0), 0, f, 1));
        assert_eq!(mb.seen[&0].len(), MAX_SEEN);
        // The earliest-expiring were forgotten.
        assert!(!mb.seen[&0].contains_key("h0"));
        assert!(mb.seen[&0].contains_key(&format!("h{}", MAX_SEEN + 9)));
    }
}
