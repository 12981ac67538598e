//! The store's passphrase: identity seeds, and the records that carry other secrets (groups,
//! with their admin seeds and member auth data; config dumps, UserGroups carrying the same),
//! sealed with the key derived from it; unlocking an encrypted store; and `set` / `change` /
//! `remove`, each migrating all of them in one transaction. After a migration, [`Store::scrub`] rewrites the file so the old form of the
//! seeds (plaintext after `set`) is not left behind in freed pages.

use std::sync::Arc;

use redb::{ReadableTable, TableDefinition};
use zeroize::Zeroizing;

use super::groups::GROUPS;
use super::{
    decode, encode, IdentityId, Store, StoreError, TxError, BLOBS, CONFIG_DUMPS, META, SEEDS,
};
use crate::secrets::{Lock, SealKey, OVERHEAD};

/// The lock record's name in `blobs`.
const LOCK_BLOB: &str = "passphrase";
/// Filler written by [`Store::scrub`] to take over freed pages, then dropped.
const SCRUB: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("scrub");
/// One filler value: close to a page, so each takes one.
const SCRUB_VALUE: usize = 3500;

/// The AAD of an identity's sealed seed.
fn seed_record(id: IdentityId) -> String {
    format!("seed/{id}")
}

/// The AAD of an identity's sealed group record.
pub(super) fn group_record(id: IdentityId, group: &str) -> String {
    format!("group/{id}/{group}")
}

/// The AAD of an identity's sealed config dump.
pub(super) fn dump_record(id: IdentityId, namespace: i32) -> String {
    format!("config/{id}/{namespace}")
}

/// Whether a stored record is sealed: plain ones are JSON objects (`{`) or bencoded dicts (`d`);
/// sealed ones start with the seal's version byte, never either.
fn is_sealed(stored: &[u8]) -> bool {
    !matches!(stored.first(), Some(b'{' | b'd'))
}

impl Store {
    fn lock_record_in(
        blobs: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<Option<Lock>, TxError> {
        match blobs.get(LOCK_BLOB)? {
            Some(v) => Ok(Some(decode("passphrase lock", v.value())?)),
            None => Ok(None),
        }
    }

    /// Whether the store's seeds are sealed with a passphrase.
    pub fn is_encrypted(&self) -> Result<bool, StoreError> {
        self.read("reading the passphrase lock", |tx| {
            Ok(Self::lock_record_in(&tx.open_table(BLOBS)?)?.is_some())
        })
    }

    /// Unlocks an encrypted store with its passphrase (a no-op for a plain store). Fails with
    /// a wrong passphrase, and then nothing changes.
    pub fn unlock(&self, passphrase: &str) -> Result<(), StoreError> {
        let lock = self.read("reading the passphrase lock", |tx| {
            Self::lock_record_in(&tx.open_table(BLOBS)?)
        })?;
        if let Some(lock) = lock {
            let key = SealKey::unlock(&lock, passphrase)?;
            *self.key_slot() = Some(Arc::new(key));
        }
        Ok(())
    }

    fn key_slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<SealKey>>> {
        self.shared.key.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn locked(&self) -> StoreError {
        StoreError::Locked {
            file: self.shared.file.clone(),
        }
    }

    /// The stored form of a new identity's seed: sealed if the store is encrypted.
    pub(super) fn seal_seed(
        &self,
        tx: &redb::WriteTransaction,
        id: IdentityId,
        seed: &[u8; 32],
    ) -> Result<Vec<u8>, TxError> {
        if Self::lock_record_in(&tx.open_table(BLOBS)?)?.is_none() {
            return Ok(seed.to_vec());
        }
        let key = self.key_slot().clone().ok_or_else(|| self.locked())?;
        Ok(key.seal(&seed_record(id), seed))
    }

    /// A seed from its stored form.
    pub(super) fn open_seed(
        &self,
        id: IdentityId,
        stored: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, StoreError> {
        let bad = || StoreError::BadRecord {
            what: "seed",
            detail: format!("{} bytes, neither a seed nor a sealed one", stored.len()),
        };
        let plain = if stored.len() == 32 + OVERHEAD {
            let key = self.key_slot().clone().ok_or_else(|| self.locked())?;
            key.open(&seed_record(id), stored)?
        } else if stored.len() == 32 {
            Zeroizing::new(stored.to_vec())
        } else {
            return Err(bad());
        };
        let seed: [u8; 32] = plain.as_slice().try_into().map_err(|_| bad())?;
        Ok(Zeroizing::new(seed))
    }

    /// The stored form of a record that carries secrets (`aad` names it: [`group_record`],
    /// [`dump_record`]): sealed if the store is encrypted, as is otherwise.
    pub(super) fn seal_record(
        &self,
        tx: &redb::WriteTransaction,
        aad: &str,
        plain: &[u8],
    ) -> Result<Vec<u8>, TxError> {
        if Self::lock_record_in(&tx.open_table(BLOBS)?)?.is_none() {
            return Ok(plain.to_vec());
        }
        let key = self.key_slot().clone().ok_or_else(|| self.locked())?;
        Ok(key.seal(aad, plain))
    }

    /// A record from its stored form ([`Store::seal_record`]).
    pub(super) fn open_record(&self, aad: &str, stored: &[u8]) -> Result<Vec<u8>, StoreError> {
        if !is_sealed(stored) {
            return Ok(stored.to_vec());
        }
        let key = self.key_slot().clone().ok_or_else(|| self.locked())?;
        Ok(key.open(aad, stored)?.to_vec())
    }

    /// Seals every seed with a key from `passphrase` (a new one for an encrypted store, which
    /// must be unlocked), in one transaction. Follow with [`Store::scrub`].
    pub fn set_passphrase(&self, passphrase: &str) -> Result<(), StoreError> {
        let (lock, key) = SealKey::create(passphrase)?;
        let key = Arc::new(key);
        self.rewrite_seeds("setting the passphrase", Some((&lock, &key)))?;
        *self.key_slot() = Some(key);
        Ok(())
    }

    /// Stores every seed in plain again and forgets the passphrase (the store must be
    /// unlocked). Follow with [`Store::scrub`].
    pub fn remove_passphrase(&self) -> Result<(), StoreError> {
        self.rewrite_seeds("removing the passphrase", None)?;
        *self.key_slot() = None;
        Ok(())
    }

    /// Opens every seed with the current key (or as plain) and stores it sealed with `new`
    /// (or plain), with the new lock record, in one transaction.
    fn rewrite_seeds(
        &self,
        action: &'static str,
        new: Option<(&Lock, &Arc<SealKey>)>,
    ) -> Result<(), StoreError> {
        self.write(action, |tx| {
            let mut blobs = tx.open_table(BLOBS)?;
            if Self::lock_record_in(&blobs)?.is_some() && self.key_slot().is_none() {
                return Err(self.locked().into());
            }
            let mut seeds = tx.open_table(SEEDS)?;
            let mut stored = Vec::new();
            for row in seeds.iter()? {
                let (id, v) = row?;
                stored.push((id.value(), v.value().to_vec()));
            }
            for (id, old) in stored {
                let seed = self.open_seed(id, &old)?;
                let value = match new {
                    Some((_, key)) => key.seal(&seed_record(id), seed.as_slice()),
                    None => seed.to_vec(),
                };
                seeds.insert(id, value.as_slice())?;
            }
            // The records with other secrets, the same way.
            let reseal = |aad: &str, old: &[u8]| -> Result<Vec<u8>, TxError> {
                let plain = Zeroizing::new(self.open_record(aad, old)?);
                Ok(match new {
                    Some((_, key)) => key.seal(aad, &plain),
                    None => plain.to_vec(),
                })
            };
            let mut groups = tx.open_table(GROUPS)?;
            let mut stored = Vec::new();
            for row in groups.iter()? {
                let (k, v) = row?;
                let (id, group) = k.value();
                stored.push((id, group.to_owned(), v.value().to_vec()));
            }
            for (id, group, old) in stored {
                let value = reseal(&group_record(id, &group), &old)?;
                groups.insert((id, group.as_str()), value.as_slice())?;
            }
            let mut dumps = tx.open_table(CONFIG_DUMPS)?;
            let mut stored = Vec::new();
            for row in dumps.iter()? {
                let (k, v) = row?;
                stored.push((k.value(), v.value().to_vec()));
            }
            for ((id, ns), old) in stored {
                let value = reseal(&dump_record(id, ns), &old)?;
                dumps.insert((id, ns), value.as_slice())?;
            }
            match new {
                Some((lock, _)) => {
                    blobs.insert(LOCK_BLOB, encode(lock).as_slice())?;
                }
                None => {
                    blobs.remove(LOCK_BLOB)?;
                }
            }
            Ok(())
        })
    }

    /// Rewrites the file so that pages freed by earlier transactions (which still hold what
    /// they held: plaintext seeds after [`Store::set_passphrase`]) are overwritten or cut off:
    /// fills the free space with filler, drops it, and compacts. Needs the only handle on the
    /// store (the passphrase commands run with the daemon stopped).
    pub fn scrub(self) -> Result<(), StoreError> {
        let file = self.shared.file.clone();
        let shared = Arc::try_unwrap(self.shared).map_err(|_| StoreError::BadRecord {
            what: "store handle",
            detail: "the store is in use elsewhere in this process; cannot compact".to_owned(),
        })?;
        let mut db = shared.db;
        let db_err = |action| move |e: redb::Error| StoreError::db(action)(e);
        let len = || std::fs::metadata(&file).map_or(0, |m| m.len());
        // Two commits release what the migration freed (redb keeps the previous commit's
        // pages until the next one).
        for _ in 0..2 {
            let tx = db
                .begin_write()
                .map_err(|e| db_err("scrubbing")(e.into()))?;
            tx.open_table(META)
                .map_err(|e| db_err("scrubbing")(e.into()))?;
            tx.commit().map_err(|e| db_err("scrubbing")(e.into()))?;
        }
        // Filler until the file grows: then every free page has been taken.
        let start = len();
        let filler = vec![0x5a_u8; SCRUB_VALUE];
        let mut n = 0u64;
        while len() <= start && n < 1_000_000 {
            let tx = db
                .begin_write()
                .map_err(|e| db_err("scrubbing")(e.into()))?;
            {
                let mut t = tx
                    .open_table(SCRUB)
                    .map_err(|e| db_err("scrubbing")(e.into()))?;
                for _ in 0..64 {
                    t.insert(n, filler.as_slice())
                        .map_err(|e| db_err("scrubbing")(e.into()))?;
                    n += 1;
                }
            }
            tx.commit().map_err(|e| db_err("scrubbing")(e.into()))?;
        }
        let tx = db
            .begin_write()
            .map_err(|e| db_err("scrubbing")(e.into()))?;
        tx.delete_table(SCRUB)
            .map_err(|e| db_err("scrubbing")(e.into()))?;
        tx.commit().map_err(|e| db_err("scrubbing")(e.into()))?;
        for _ in 0..2 {
            let tx = db
                .begin_write()
                .map_err(|e| db_err("scrubbing")(e.into()))?;
            tx.commit().map_err(|e| db_err("scrubbing")(e.into()))?;
        }
        db.compact().map_err(|e| db_err("compacting")(e.into()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretsError;

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sd-lock-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn seed(i: u8) -> [u8; 32] {
        let mut s = [0u8; 32];
        for (j, b) in s.iter_mut().enumerate() {
            *b = i.wrapping_mul(31).wrapping_add(j as u8).wrapping_mul(7) ^ 0xa5;
        }
        s
    }

    fn found_in(file: &std::path::Path, needle: &[u8]) -> bool {
        let bytes = std::fs::read(file).expect("read the redb file");
        bytes.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn set_hides_the_seeds_and_remove_brings_them_back() {
        let dir = temp_dir("migrate");
        let store = Store::open(&dir).expect("open");
        for i in 0..3u8 {
            store
                .add_identity(&format!("id{i}"), &format!("05{i:064}"), &seed(i), 1)
                .expect("add");
        }
        let file = store.file().to_owned();
        assert!(!store.is_encrypted().expect("read"));
        // The search finds plain seeds, so its "not found" below means something.
        assert!(found_in(&file, &seed(1)));

        store.set_passphrase("hunter2 hunter2").expect("set");
        store.scrub().expect("scrub");
        for i in 0..3u8 {
            assert!(!found_in(&file, &seed(i)), "seed {i} is still in the file");
        }

        // Refused without the passphrase, refused with a wrong one, opened with it.
        let store = Store::open(&dir).expect("reopen");
        assert!(store.is_encrypted().expect("read"));
        assert!(matches!(
            store.identity_seed("id0"),
            Err(StoreError::Locked { .. })
        ));
        assert!(matches!(
            store.add_identity("new", &format!("05{:064}", 9), &seed(9), 1),
            Err(StoreError::Locked { .. })
        ));
        assert!(matches!(
            store.unlock("wrong"),
            Err(StoreError::Secrets(SecretsError::WrongPassphrase))
        ));
        store.unlock("hunter2 hunter2").expect("unlock");
        for i in 0..3u8 {
            assert_eq!(
                *store.identity_seed(&format!("id{i}")).expect("seed"),
                seed(i)
            );
        }
        // New identities are sealed too.
        store
            .add_identity("id3", &format!("05{:064}", 3), &seed(3), 1)
            .expect("add sealed");
        assert_eq!(*store.identity_seed("id3").expect("seed"), seed(3));

        // Change: the old passphrase stops working.
        store.set_passphrase("correct horse").expect("change");
        store.scrub().expect("scrub");
        let store = Store::open(&dir).expect("reopen");
        assert!(store.unlock("hunter2 hunter2").is_err());
        store.unlock("correct horse").expect("unlock");

        // Remove: plain again, no passphrase needed.
        store.remove_passphrase().expect("remove");
        store.scrub().expect("scrub");
        let store = Store::open(&dir).expect("reopen");
        assert!(!store.is_encrypted().expect("read"));
        for i in 0..4u8 {
            assert_eq!(
                *store.identity_seed(&format!("id{i}")).expect("seed"),
                seed(i)
            );
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Groups (admin seeds, member auth data) and config dumps (UserGroups carries the same)
    /// are sealed with the seeds, and come back with the passphrase.
    #[test]
    fn set_hides_group_secrets_and_config_dumps_too() {
        use crate::store::{GroupRecord, GroupStatus};
        let dir = temp_dir("groups");
        let store = Store::open(&dir).expect("open");
        let id = store
            .add_identity("a", &format!("05{:064}", 1), &seed(1), 1)
            .expect("add")
            .id;
        let admin_seed = hex::encode(seed(7));
        let group = |gid: &str| GroupRecord {
            id: gid.to_owned(),
            name: "Hikers".into(),
            description: String::new(),
            status: GroupStatus::Joined,
            admin_seed: Some(admin_seed.clone()),
            auth_data: None,
            inviter: None,
            members: Vec::new(),
            keys_messages: Vec::new(),
            info_dump: None,
            members_dump: None,
            created_at_ms: 1,
        };
        let (g1, g2) = (format!("03{:064}", 1), format!("03{:064}", 2));
        store
            .update_group(id, &g1, 1, |_| Some(group(&g1)))
            .expect("group");
        let dump = b"d1:!i0e1:$20:user groups dump bytese".to_vec();
        store.set_config_dump(id, 5, &dump).expect("dump");
        let file = store.file().to_owned();
        assert!(found_in(&file, admin_seed.as_bytes()));
        assert!(found_in(&file, b"user groups dump bytes"));

        store.set_passphrase("pw pw pw").expect("set");
        // Written while encrypted: sealed too.
        store
            .update_group(id, &g2, 2, |_| Some(group(&g2)))
            .expect("group");
        store.scrub().expect("scrub");
        assert!(!found_in(&file, admin_seed.as_bytes()), "an admin seed");
        assert!(!found_in(&file, b"user groups dump bytes"), "a dump");

        let store = Store::open(&dir).expect("reopen");
        assert!(matches!(
            store.group(id, &g1),
            Err(StoreError::Locked { .. })
        ));
        assert!(matches!(
            store.config_dump(id, 5),
            Err(StoreError::Locked { .. })
        ));
        store.unlock("pw pw pw").expect("unlock");
        let groups = store.groups(id).expect("groups");
        assert_eq!(groups.len(), 2);
        assert!(groups
            .iter()
            .all(|g| g.admin_seed.as_deref() == Some(admin_seed.as_str())));
        assert_eq!(store.config_dump(id, 5).expect("dump"), Some(dump.clone()));

        store.remove_passphrase().expect("remove");
        store.scrub().expect("scrub");
        let store = Store::open(&dir).expect("reopen");
        assert_eq!(store.groups(id).expect("plain groups").len(), 2);
        assert_eq!(store.config_dump(id, 5).expect("dump"), Some(dump));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_sealed_seed_is_an_error() {
        let dir = temp_dir("damaged");
        let store = Store::open(&dir).expect("open");
        store
            .add_identity("a", &format!("05{:064}", 1), &seed(1), 1)
            .expect("add");
        store.set_passphrase("pw").expect("set");
        let id = store.identity("a").expect("record").id;
        store
            .write("damaging a seed", |tx| {
                let mut seeds = tx.open_table(SEEDS)?;
                let mut v = seeds
                    .get(id)?
                    .map(|v| v.value().to_vec())
                    .unwrap_or_default();
                v[40] ^= 0xff;
                seeds.insert(id, v.as_slice())?;
                Ok(())
            })
            .expect("write");
        assert!(matches!(
            store.identity_seed("a"),
            Err(StoreError::Secrets(SecretsError::Damaged { .. }))
        ));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
