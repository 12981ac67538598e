//! A node's subaccount revocation lists (`revoke_subaccount` / `unrevoke_subaccount`).
//!
//! Per account, the most recent [`MAX_SUBACCOUNT_REVOCATIONS`] revoked tokens, like the storage
//! server's `revoked_subaccounts` table: revoking a token that is already listed refreshes its
//! place; revoking the 51st forgets the oldest, whose token then works again. A revoked token
//! fails every signed request with 401, except `retrieve` from the namespaces `−(100n+11)`
//! (session-proto's `is_unrevocable`), where a kicked group member finds its notice.
//!
//! The lists live in memory only: a devnet restarted on the same data dir keeps its messages but
//! forgets revocations (the groups flow re-revokes on every removal).

use std::collections::HashMap;
use std::sync::Mutex;

use session_proto::storage_rpc::request::MAX_SUBACCOUNT_REVOCATIONS;
use session_proto::storage_rpc::SubaccountToken;

use crate::store::AccountBytes;

/// The revocation lists of one node. A std Mutex: nothing awaits while it is held.
#[derive(Debug, Default)]
pub(crate) struct Revocations {
    /// Account → tokens, oldest first.
    lists: Mutex<HashMap<AccountBytes, Vec<SubaccountToken>>>,
}

impl Revocations {
    /// Adds `tokens` (in order) to the account's list, keeping the newest
    /// [`MAX_SUBACCOUNT_REVOCATIONS`].
    pub(crate) fn revoke(&self, account: &AccountBytes, tokens: &[SubaccountToken]) {
        let mut lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        let list = lists.entry(*account).or_default();
        for t in tokens {
            list.retain(|have| have != t);
            list.push(*t);
        }
        let excess = list.len().saturating_sub(MAX_SUBACCOUNT_REVOCATIONS);
        list.drain(..excess);
    }

    /// Removes `tokens` from the account's list; returns how many were on it.
    pub(crate) fn unrevoke(&self, account: &AccountBytes, tokens: &[SubaccountToken]) -> u64 {
        let mut lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = lists.get_mut(account) else {
            return 0;
        };
        let before = list.len();
        list.retain(|have| !tokens.contains(have));
        let removed = before - list.len();
        if list.is_empty() {
            lists.remove(account);
        }
        removed as u64
    }

    /// Whether `token` is on the account's list.
    pub(crate) fn is_revoked(&self, account: &AccountBytes, token: &SubaccountToken) -> bool {
        let lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        lists.get(account).is_some_and(|l| l.contains(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(i: u16) -> SubaccountToken {
        let mut t = [0u8; 36];
        t[0] = 3;
        t[1] = 3;
        t[4..6].copy_from_slice(&i.to_be_bytes());
        SubaccountToken(t)
    }

    #[test]
    fn keeps_the_newest_fifty_and_unrevokes() {
        let r = Revocations::default();
        let (a, b) = ([3u8; 33], [4u8; 33]);
        r.revoke(&a, &[token(0)]);
        assert!(r.is_revoked(&a, &token(0)));
        assert!(!r.is_revoked(&b, &token(0)));
        // 49 more: token 0 is still the oldest of 50.
        let more: Vec<_> = (1..50).map(token).collect();
        r.revoke(&a, &more);
        assert!(r.is_revoked(&a, &token(0)));
        // One more pushes token 0 out.
        r.revoke(&a, &[token(50)]);
        assert!(!r.is_revoked(&a, &token(0)));
        assert!(r.is_revoked(&a, &token(1)));
        // Re-revoking refreshes: token 1 becomes the newest, so token 2 is dropped next.
        r.revoke(&a, &[token(1), token(51)]);
        assert!(r.is_revoked(&a, &token(1)));
        assert!(!r.is_revoked(&a, &token(2)));
        assert_eq!(r.unrevoke(&a, &[token(1), token(0), token(999)]), 1);
        assert!(!r.is_revoked(&a, &token(1)));
        assert_eq!(r.unrevoke(&b, &[token(1)]), 0);
    }
}
