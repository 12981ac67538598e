//! A node's message store: an in-memory index, optionally written through to a redb file so
//! messages survive a restart (`--data-dir`).
//!
//! Messages are kept per (account, namespace) in insertion order, which is the order `retrieve`
//! pages through with `last_hash`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::err::DevnetError;

const MESSAGES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("messages");

/// A 33-byte account id: network prefix byte and 32 key bytes.
pub type AccountBytes = [u8; 33];

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMsg {
    /// Insertion sequence number (orders `retrieve`).
    pub seq: u64,
    /// The account, as 66 hex chars.
    pub account: String,
    /// The namespace.
    pub ns: i64,
    /// The message hash (43 chars, unpadded base64).
    pub hash: String,
    /// Sender's timestamp, ms.
    pub timestamp: i64,
    /// Expiry, ms.
    pub expiry: i64,
    /// The message bytes.
    #[serde(with = "b64_bytes")]
    pub data: Vec<u8>,
}

mod b64_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    use session_proto::storage_rpc::wire::{decode_base64, encode_base64};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode_base64(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        decode_base64(&s).ok_or_else(|| serde::de::Error::custom("stored data is not base64"))
    }
}

/// The outcome of storing a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// False if the hash was already stored.
    pub new: bool,
    /// The message's expiry after the store.
    pub expiry: i64,
}

/// A node's messages. Cheap operations under a std Mutex (nothing awaits while it is held).
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
}

struct Inner {
    by_hash: HashMap<String, StoredMsg>,
    /// (account hex, ns) → seq → hash.
    boxes: HashMap<(String, i64), BTreeMap<u64, String>>,
    next_seq: u64,
    db: Option<(redb::Database, PathBuf)>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("messages", &self.by_hash.len())
            .finish_non_exhaustive()
    }
}

fn store_err(path: &Path, e: impl std::fmt::Display) -> DevnetError {
    DevnetError::Store {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

impl Store {
    /// An empty in-memory store.
    pub fn memory() -> Store {
        Store {
            inner: Mutex::new(Inner {
                by_hash: HashMap::new(),
                boxes: HashMap::new(),
                next_seq: 1,
                db: None,
            }),
        }
    }

    /// A store backed by the redb file at `path` (created if missing); loads what it holds.
    pub fn open(path: &Path) -> Result<Store, DevnetError> {
        let db = redb::Database::create(path).map_err(|e| store_err(path, e))?;
        let store = Store::memory();
        {
            let mut inner = store.lock();
            let txn = db.begin_write().map_err(|e| store_err(path, e))?;
            {
                // Creates the table on first use.
                let table = txn.open_table(MESSAGES).map_err(|e| store_err(path, e))?;
                for row in table.iter().map_err(|e| store_err(path, e))? {
                    let (_, v) = row.map_err(|e| store_err(path, e))?;
                    let msg: StoredMsg =
                        serde_json::from_slice(v.value()).map_err(|e| store_err(path, e))?;
                    inner.index(msg);
                }
            }
            txn.commit().map_err(|e| store_err(path, e))?;
            inner.db = Some((db, path.to_path_buf()));
        }
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("store lock is never poisoned")
    }

    /// Stores a message (idempotent by hash: a repeat keeps the later expiry).
    pub fn insert(
        &self,
        account: &str,
        ns: i64,
        hash: &str,
        timestamp: i64,
        expiry: i64,
        data: &[u8],
    ) -> Result<Inserted, DevnetError> {
        let mut inner = self.lock();
        if let Some(existing) = inner.by_hash.get(hash).cloned() {
            let expiry = existing.expiry.max(expiry);
            if expiry != existing.expiry {
                let mut m = existing;
                m.expiry = expiry;
                inner.persist(&[m.clone()], &[])?;
                inner.by_hash.insert(m.hash.clone(), m);
            }
            return Ok(Inserted { new: false, expiry });
        }
        let msg = StoredMsg {
            seq: inner.next_seq,
            account: account.to_string(),
            ns,
            hash: hash.to_string(),
            timestamp,
            expiry,
            data: data.to_vec(),
        };
        inner.persist(std::slice::from_ref(&msg), &[])?;
        inner.index(msg);
        Ok(Inserted { new: true, expiry })
    }

    /// Messages of (account, ns) after `last_hash` (all if empty or unknown), unexpired at
    /// `now`, at most `max_count` and about `max_size` data bytes (always at least one).
    /// Returns the messages and whether more remain.
    pub fn retrieve(
        &self,
        account: &str,
        ns: i64,
        last_hash: &str,
        max_count: Option<usize>,
        max_size: usize,
        now: i64,
    ) -> (Vec<StoredMsg>, bool) {
        let inner = self.lock();
        let Some(b) = inner.boxes.get(&(account.to_string(), ns)) else {
            return (Vec::new(), false);
        };
        let after = inner
            .by_hash
            .get(last_hash)
            .filter(|m| m.account == account && m.ns == ns)
            .map(|m| m.seq)
            .unwrap_or(0);
        let mut out = Vec::new();
        let mut size = 0usize;
        let mut more = false;
        for hash in b.range(after + 1..).map(|(_, h)| h) {
            let Some(m) = inner.by_hash.get(hash) else {
                continue;
            };
            if m.expiry <= now {
                continue;
            }
            let full_count = max_count.is_some_and(|c| out.len() >= c);
            if full_count || (!out.is_empty() && size + m.data.len() > max_size) {
                more = true;
                break;
            }
            size += m.data.len();
            out.push(m.clone());
        }
        (out, more)
    }

    /// Deletes the account's messages with these hashes; returns the hashes deleted.
    pub fn delete_hashes(
        &self,
        account: &str,
        hashes: &[String],
    ) -> Result<Vec<String>, DevnetError> {
        let mut inner = self.lock();
        let victims: Vec<String> = hashes
            .iter()
            .filter(|h| inner.by_hash.get(*h).is_some_and(|m| m.account == account))
            .cloned()
            .collect();
        inner.remove(&victims)?;
        Ok(victims)
    }

    /// Deletes the account's messages in `ns` (all namespaces if `None`) matching `pred`;
    /// returns (ns, hash) of each deleted message.
    pub fn delete_where(
        &self,
        account: &str,
        ns: Option<i64>,
        pred: impl Fn(&StoredMsg) -> bool,
    ) -> Result<Vec<(i64, String)>, DevnetError> {
        let mut inner = self.lock();
        let victims: Vec<(i64, String)> = inner
            .by_hash
            .values()
            .filter(|m| m.account == account && ns.is_none_or(|n| n == m.ns) && pred(m))
            .map(|m| (m.ns, m.hash.clone()))
            .collect();
        let hashes: Vec<String> = victims.iter().map(|(_, h)| h.clone()).collect();
        inner.remove(&hashes)?;
        Ok(victims)
    }

    /// Sets new expiries on the account's messages: `expiries` has one value for all or one per
    /// hash. `extend_only`/`shorten_only` skip changes in the other direction. Returns
    /// (hash, new expiry) of those changed.
    pub fn update_expiry(
        &self,
        account: &str,
        hashes: &[String],
        expiries: &[i64],
        extend_only: bool,
        shorten_only: bool,
    ) -> Result<Vec<(String, i64)>, DevnetError> {
        let mut inner = self.lock();
        let mut changed = Vec::new();
        let mut updated_msgs = Vec::new();
        for (i, h) in hashes.iter().enumerate() {
            let want = if expiries.len() == 1 {
                expiries[0]
            } else {
                match expiries.get(i) {
                    Some(e) => *e,
                    None => continue,
                }
            };
            let Some(m) = inner.by_hash.get_mut(h) else {
                continue;
            };
            if m.account != account
                || m.expiry == want
                || (extend_only && want < m.expiry)
                || (shorten_only && want > m.expiry)
            {
                continue;
            }
            m.expiry = want;
            changed.push((h.clone(), want));
            updated_msgs.push(m.clone());
        }
        inner.persist(&updated_msgs, &[])?;
        Ok(changed)
    }

    /// Shortens (never extends) the expiry of all the account's messages in `ns` (all if
    /// `None`) to `expiry`; returns (ns, hash) of those changed.
    pub fn shorten_all(
        &self,
        account: &str,
        ns: Option<i64>,
        expiry: i64,
    ) -> Result<Vec<(i64, String)>, DevnetError> {
        let mut inner = self.lock();
        let mut changed = Vec::new();
        let mut updated = Vec::new();
        for m in inner.by_hash.values_mut() {
            if m.account == account && ns.is_none_or(|n| n == m.ns) && m.expiry > expiry {
                m.expiry = expiry;
                changed.push((m.ns, m.hash.clone()));
                updated.push(m.clone());
            }
        }
        inner.persist(&updated, &[])?;
        Ok(changed)
    }

    /// The expiries of the account's messages among `hashes`.
    pub fn expiries(&self, account: &str, hashes: &[String]) -> BTreeMap<String, i64> {
        let inner = self.lock();
        hashes
            .iter()
            .filter_map(|h| {
                inner
                    .by_hash
                    .get(h)
                    .filter(|m| m.account == account)
                    .map(|m| (h.clone(), m.expiry))
            })
            .collect()
    }

    /// The (hash, sender's timestamp, expiry) of `account`'s messages in `namespace`, oldest
    /// first.
    pub fn stamps(&self, account: &str, namespace: i64) -> Vec<(String, i64, i64)> {
        let inner = self.lock();
        inner
            .boxes
            .get(&(account.to_owned(), namespace))
            .into_iter()
            .flat_map(|b| b.values())
            .filter_map(|h| inner.by_hash.get(h))
            .map(|m| (m.hash.clone(), m.timestamp, m.expiry))
            .collect()
    }

    /// Removes messages whose expiry is at or before `now`; returns how many.
    pub fn purge(&self, now: i64) -> Result<usize, DevnetError> {
        let mut inner = self.lock();
        let expired: Vec<String> = inner
            .by_hash
            .values()
            .filter(|m| m.expiry <= now)
            .map(|m| m.hash.clone())
            .collect();
        inner.remove(&expired)?;
        Ok(expired.len())
    }

    /// Number of stored messages (including expired ones not yet purged).
    pub fn len(&self) -> usize {
        self.lock().by_hash.len()
    }

    /// True if nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if a message with this hash is stored (expired or not).
    pub fn holds(&self, hash: &str) -> bool {
        self.lock().by_hash.contains_key(hash)
    }
}

impl Inner {
    fn index(&mut self, msg: StoredMsg) {
        self.next_seq = self.next_seq.max(msg.seq + 1);
        self.boxes
            .entry((msg.account.clone(), msg.ns))
            .or_default()
            .insert(msg.seq, msg.hash.clone());
        self.by_hash.insert(msg.hash.clone(), msg);
    }

    fn remove(&mut self, hashes: &[String]) -> Result<(), DevnetError> {
        if hashes.is_empty() {
            return Ok(());
        }
        self.persist(&[], hashes)?;
        for h in hashes {
            if let Some(m) = self.by_hash.remove(h) {
                let key = (m.account, m.ns);
                if let Some(b) = self.boxes.get_mut(&key) {
                    b.remove(&m.seq);
                    if b.is_empty() {
                        self.boxes.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes upserts and deletions to redb in one transaction (no-op in memory).
    fn persist(&self, upserts: &[StoredMsg], deletes: &[String]) -> Result<(), DevnetError> {
        let Some((db, path)) = &self.db else {
            return Ok(());
        };
        if upserts.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        let txn = db.begin_write().map_err(|e| store_err(path, e))?;
        {
            let mut table = txn.open_table(MESSAGES).map_err(|e| store_err(path, e))?;
            for m in upserts {
                let bytes = serde_json::to_vec(m).map_err(|e| store_err(path, e))?;
                table
                    .insert(m.hash.as_str(), bytes.as_slice())
                    .map_err(|e| store_err(path, e))?;
            }
            for h in deletes {
                table.remove(h.as_str()).map_err(|e| store_err(path, e))?;
            }
        }
        txn.commit().map_err(|e| store_err(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "05aa";

    #[test]
    fn paging_limits_and_more() {
        let s = Store::memory();
        for i in 0..5 {
            let r = s
                .insert(A, 0, &format!("h{i}"), 1, 1000, &[0u8; 10])
                .expect("memory store");
            assert!(r.new);
        }
        assert!(!s.insert(A, 0, "h0", 1, 900, b"x").expect("ok").new);
        let (m, more) = s.retrieve(A, 0, "", Some(2), usize::MAX, 0);
        assert_eq!(
            m.iter().map(|m| m.hash.as_str()).collect::<Vec<_>>(),
            ["h0", "h1"]
        );
        assert!(more);
        let (m, more) = s.retrieve(A, 0, "h1", None, 25, 0);
        assert_eq!(m.len(), 2);
        assert!(more);
        let (m, more) = s.retrieve(A, 0, "h3", None, 1, 0);
        assert_eq!(m.len(), 1, "at least one message even over max_size");
        assert!(!more);
        assert!(s.retrieve(A, 1, "", None, 100, 0).0.is_empty());
        assert!(
            s.retrieve(A, 0, "", None, 100, 1000).0.is_empty(),
            "expired"
        );
        assert_eq!(s.purge(1000).expect("ok"), 5);
    }

    #[test]
    fn redb_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("devnet-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("m.redb");
        let _ = std::fs::remove_file(&path);
        {
            let s = Store::open(&path).expect("open");
            s.insert(A, 2, "x1", 1, 5000, b"one").expect("insert");
            s.insert(A, 2, "x2", 1, 5000, b"two").expect("insert");
            assert_eq!(s.delete_hashes(A, &["x1".into()]).expect("del"), ["x1"]);
        }
        let s = Store::open(&path).expect("reopen");
        let (m, _) = s.retrieve(A, 2, "", None, 1000, 0);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].data, b"two");
        s.insert(A, 2, "x3", 1, 5000, b"three").expect("insert");
        let (m, _) = s.retrieve(A, 2, "x2", None, 1000, 0);
        assert_eq!(m[0].hash, "x3", "sequence continues after reload");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
