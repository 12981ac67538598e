//! Member-sticky retrieve: a [`Mailbox`] keeps, for one account, the swarm member it reads
//! from, a `last_hash` per (namespace, member), and the hashes already handed out.
//!
//! Swarm members hold messages in the order they reached each of them (replication reorders),
//! so a `last_hash` means something only on the member that gave it. The mailbox sticks to one
//! member; when it must switch (the member failed, left the swarm, or a 421 moved the account),
//! it reads the new member from that member's own cursor, or from the start if it has none, and
//! drops the messages it already handed out.
//!
//! Members do not all hold the same messages: replication to a member that was down, slow or
//! failing at the time of a store never happens again, so a member can miss messages the
//! others have. Reading one member only would hide those for good. So after every switch (and
//! the first poll) the mailbox **sweeps**: its next polls read each other member of the swarm
//! once, from that member's own cursor, to its end, and then it returns to its sticky member; a
//! sweep also runs every [`SWEEP_EVERY_MS`] (a member can miss a message while it still answers
//! reads), and a member that joins the swarm (or returns to it) is read once. A member that
//! fails to answer a sweep is tried again, at most [`SWEEP_TRIES`] times.
//! Across switches and sweeps nothing is skipped (every member is read from its own position)
//! and nothing repeats (seen hashes are remembered until their messages expire, at most
//! [`MAX_SEEN`] per namespace). The cost: a sweep re-reads what the other members got since
//! their cursors (dropped here as repeats).
//!
//! The caller owns the mailbox: [`NetClient::poll`](crate::NetClient::poll) reads with it and
//! returns a [`Poll`]; [`Mailbox::advance`] moves the cursors once the caller has kept the
//! messages. A caller that fails to keep them simply polls again and gets them again.

use std::collections::{HashMap, VecDeque};

use session_proto::storage_rpc::{RetrievedMessage, UserPubkey};

use super::err::NetError;
use super::snode::Snode;

/// Hashes remembered per namespace to drop repeats after a member switch. Beyond it the ones
/// expiring first are forgotten (a mailbox that large re-reads rarely: switches are rare).
pub const MAX_SEEN: usize = 20_000;
/// How often a mailbox sweeps its swarm without a switch (network time, ms).
pub const SWEEP_EVERY_MS: u64 = 5 * 60_000;
/// Attempts to read one member in a sweep before the sweep goes on without it.
pub const SWEEP_TRIES: u32 = 3;

/// Cursors over one account's namespaces. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Mailbox {
    account: UserPubkey,
    member: Option<Snode>,
    cursors: HashMap<(i16, [u8; 32]), String>,
    seen: HashMap<i16, HashMap<String, u64>>,
    /// Members still to read in the current sweep, the next one first.
    sweep: VecDeque<Snode>,
    /// Failed attempts to read each member in sweeps (forgotten when it answers).
    sweep_failures: HashMap<[u8; 32], u32>,
    /// When the last sweep started (network time, ms).
    swept_at_ms: Option<u64>,
    /// The swarm as the last poll knew it (a member joining it is swept).
    last_swarm: Vec<[u8; 32]>,
    sweep_every_ms: u64,
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
    /// The account's swarm as known when the poll was answered (what a sweep reads).
    pub swarm: Vec<Snode>,
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
            sweep: VecDeque::new(),
            sweep_failures: HashMap::new(),
            swept_at_ms: None,
            last_swarm: Vec::new(),
            sweep_every_ms: SWEEP_EVERY_MS,
        }
    }

    /// Sweeps every `every` instead of every [`SWEEP_EVERY_MS`] (tests, or a caller that
    /// polls rarely).
    pub fn with_sweep_every(mut self, every: std::time::Duration) -> Mailbox {
        self.sweep_every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// The account.
    pub fn account(&self) -> &UserPubkey {
        &self.account
    }

    /// The member read from, if one is chosen.
    pub fn member(&self) -> Option<&Snode> {
        self.member.as_ref()
    }

    /// The member the next poll asks first: the next one of a sweep, else the sticky one.
    pub fn target(&self) -> Option<&Snode> {
        self.sweep.front().or(self.member.as_ref())
    }

    /// True while a sweep has members left to read.
    pub fn sweeping(&self) -> bool {
        !self.sweep.is_empty()
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

    /// Keeps what `poll` fetched: each successful namespace's cursor on its member moves to
    /// the reply's last hash and its messages count as handed out. A member other than the
    /// sticky one becomes the sticky one and starts a sweep, unless the poll was a sweep's
    /// (then the sweep moves on once the member that answered has nothing more).
    pub fn advance(&mut self, poll: &Poll) {
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
        self.keep_sweeping(poll);
    }

    /// The sweep's part of [`Mailbox::advance`].
    fn keep_sweeping(&mut self, poll: &Poll) {
        let answered = poll.member.ed25519;
        // The poll asked the sweep's next member first, if there was one.
        let next = self.sweep.front().cloned();
        let whole = poll.namespaces.iter().all(|ns| ns.result.is_ok());
        let more = poll
            .namespaces
            .iter()
            .any(|ns| ns.result.as_ref().is_ok_and(|f| f.more));
        if let Some(next) = &next {
            if next.ed25519 != answered || !whole {
                // It did not answer (another member did), or not for every namespace.
                self.sweep.retain(|m| m != next);
                let tries = self.sweep_failures.entry(next.ed25519).or_default();
                *tries += 1;
                if *tries < SWEEP_TRIES {
                    self.sweep.push_back(next.clone());
                }
            }
            if whole {
                // Whoever answered was read from its own cursor: done with it, unless it has
                // more.
                self.sweep.retain(|m| m.ed25519 != answered);
                if more {
                    self.sweep.push_front(poll.member.clone());
                } else {
                    self.sweep_failures.remove(&answered);
                }
            }
        }
        let sticky = self.member.as_ref().map(|m| m.ed25519);
        if !poll.swarm.is_empty() {
            // A 421 may have moved the account: sweep only its current swarm.
            self.sweep.retain(|m| poll.swarm.contains(m));
            // A member that joined (or came back after the client dropped it) is read once.
            if !self.last_swarm.is_empty() {
                for m in &poll.swarm {
                    let known = self.last_swarm.contains(&m.ed25519)
                        || self.sweep.contains(m)
                        || m.ed25519 == answered
                        || Some(m.ed25519) == sticky;
                    if !known {
                        self.sweep.push_back(m.clone());
                    }
                }
            }
            self.last_swarm = poll.swarm.iter().map(|m| m.ed25519).collect();
        }
        // The sticky member left the swarm (a 421 moved the account): the one that answered
        // takes its place.
        let stays = poll.swarm.is_empty() || poll.swarm.iter().any(|m| Some(m.ed25519) == sticky);
        if sticky.is_some() && stays && (next.is_some() || sticky == Some(answered)) {
            let due = self
                .swept_at_ms
                .is_none_or(|t| poll.at_ms.saturating_sub(t) >= self.sweep_every_ms);
            if self.sweep.is_empty() && due {
                // Members can miss messages while they answer reads: look at them now and then.
                self.sweep_failures.clear();
                self.start_sweep(poll);
            }
            return;
        }
        // A switch (or the first poll): the new member may lack what the others hold.
        self.member = Some(poll.member.clone());
        self.start_sweep(poll);
    }

    /// Queues every member of the poll's swarm but the one that answered (and those that
    /// failed [`SWEEP_TRIES`] times since the last periodic sweep).
    fn start_sweep(&mut self, poll: &Poll) {
        self.swept_at_ms = Some(poll.at_ms);
        self.sweep = poll
            .swarm
            .iter()
            .filter(|m| m.ed25519 != poll.member.ed25519)
            .filter(|m| self.sweep_failures.get(&m.ed25519).copied().unwrap_or(0) < SWEEP_TRIES)
            .cloned()
            .collect();
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
            swarm: Vec::new(),
        }
    }

    /// A poll of namespace 0 answered by `member` of `swarm`.
    fn swarm_poll(member: &Snode, swarm: &[Snode], f: Fetched, at_ms: u64) -> Poll {
        Poll {
            swarm: swarm.to_vec(),
            ..poll(member.clone(), 0, f, at_ms)
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
            swarm: Vec::new(),
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

    /// The soak's lost messages (issue 20): `b` missed "m" (it was down when "m" was stored on
    /// `a` and `c`); a mailbox that switched to `b` after its last read of `a` would stick to
    /// `b` and never see "m". After a switch the mailbox reads the other members once.
    #[test]
    fn a_switch_sweeps_the_other_members_from_their_own_cursors() {
        let mut mb = Mailbox::new(UserPubkey([5; 33]));
        let (a, b, c) = (node(1, 0), node(2, 0), node(3, 0));
        let swarm = [a.clone(), b.clone(), c.clone()];
        // First poll: `a` becomes sticky, and the sweep reads `b` and `c` (no message yet).
        let f = mb.sort_out(0, vec![msg("h1", 1000)], false);
        mb.advance(&swarm_poll(&a, &swarm, f, 10));
        assert_eq!(mb.member(), Some(&a));
        for other in [&b, &c] {
            assert_eq!(mb.target(), Some(other), "the sweep reads {other:?}");
            let f = mb.sort_out(0, vec![msg("h1", 1000)], false);
            assert_eq!(f.repeats, 1);
            mb.advance(&swarm_poll(other, &swarm, f, 20));
            assert_eq!(
                mb.member(),
                Some(&a),
                "a sweep read keeps the sticky member"
            );
        }
        assert!(!mb.sweeping());
        assert_eq!(mb.target(), Some(&a));
        // "m" reaches `a` and `c` only; `a` fails before the mailbox reads it, `b` answers.
        let f = mb.sort_out(0, vec![msg("h2", 1000)], false);
        mb.advance(&swarm_poll(&b, &swarm, f, 30));
        assert_eq!(mb.member(), Some(&b));
        // Then the sweep: `a` first (it fails: `b` answers instead, nothing new), then `c`,
        // read from its own cursor ("h1"), has "m".
        assert_eq!(mb.target(), Some(&a));
        mb.advance(&swarm_poll(&b, &swarm, mb.sort_out(0, vec![], false), 40));
        assert_eq!(mb.target(), Some(&c));
        assert_eq!(mb.last_hash(0, &c), Some("h1"));
        let f = mb.sort_out(0, vec![msg("m", 1000), msg("h2", 1000)], false);
        assert_eq!(f.messages, vec![msg("m", 1000)]);
        assert_eq!(f.repeats, 1);
        mb.advance(&swarm_poll(&c, &swarm, f, 50));
        // `a` again (it failed once), now answering, with more to read: it stays next.
        assert_eq!(mb.target(), Some(&a));
        let f = mb.sort_out(0, vec![msg("m", 1000)], true);
        mb.advance(&swarm_poll(&a, &swarm, f, 60));
        assert_eq!(mb.target(), Some(&a));
        mb.advance(&swarm_poll(&a, &swarm, mb.sort_out(0, vec![], false), 70));
        assert!(!mb.sweeping());
        assert_eq!(mb.target(), Some(&b), "back to the sticky member");
        assert_eq!(mb.member(), Some(&b));
    }

    #[test]
    fn sweeps_give_up_on_a_dead_member_and_recur() {
        let mut mb = Mailbox::new(UserPubkey([5; 33]))
            .with_sweep_every(std::time::Duration::from_millis(1000));
        let (a, b, c) = (node(1, 0), node(2, 0), node(3, 0));
        let swarm = [a.clone(), b.clone(), c.clone()];
        let empty = |mb: &Mailbox| mb.sort_out(0, vec![], false);
        mb.advance(&swarm_poll(&a, &swarm, empty(&mb), 0));
        mb.advance(&swarm_poll(&b, &swarm, empty(&mb), 1));
        // `c` is down: the sticky member answers instead, three times, then the sweep ends.
        for at in 2..5 {
            assert_eq!(mb.target(), Some(&c));
            mb.advance(&swarm_poll(&a, &swarm, empty(&mb), at));
        }
        assert!(!mb.sweeping());
        assert_eq!(mb.member(), Some(&a));
        // Without a switch, no sweep until the period is over; then one, `c` included again.
        mb.advance(&swarm_poll(&a, &swarm, empty(&mb), 999));
        assert!(!mb.sweeping());
        mb.advance(&swarm_poll(&a, &swarm, empty(&mb), 1000));
        assert_eq!(mb.target(), Some(&b));
        mb.advance(&swarm_poll(&b, &swarm, empty(&mb), 1001));
        assert_eq!(mb.target(), Some(&c));
        // `c` fails and `b` answers instead: a sweep read, not a switch.
        mb.advance(&swarm_poll(&b, &swarm, empty(&mb), 1001));
        assert_eq!((mb.member(), mb.target()), (Some(&a), Some(&c)));
        // A 421 moved the account: members of the old swarm are not swept, the new ones are,
        // and the member that answered from the new swarm becomes the sticky one.
        let (d, e) = (node(4, 0), node(5, 0));
        let moved = [d.clone(), e.clone()];
        mb.advance(&swarm_poll(&d, &moved, empty(&mb), 1002));
        assert_eq!((mb.member(), mb.target()), (Some(&d), Some(&e)));
    }
}
