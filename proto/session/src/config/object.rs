//! One config object as a client keeps it (libsession's `ConfigBase`): the current message, its
//! push state, the storage hashes to keep alive and to delete, pending multipart parts, and the
//! dump that persists all of it.
//!
//! Call order, as a sans-io state machine (time is an argument):
//! 1. [`Config::merge`] every message retrieved from the config's namespace (all of one poll in
//!    one call). It returns the storage hashes it accepted.
//! 2. Change data with [`Config::edit`]; a real change makes the config dirty (seqno + 1 once
//!    per push).
//! 3. When [`Config::needs_push`], [`Config::push`] gives the messages to `store` and the
//!    obsolete hashes to `delete` in the same request. After the stores succeed call
//!    [`Config::confirm_pushed`] with the seqno and the storage hashes; after the delete
//!    succeeds call [`Config::forget_obsolete`].
//! 4. Persist [`Config::dump`] whenever [`Config::needs_dump`].
//!
//! One type serves the account's four user configs (unsigned, one key from the seed, legacy
//! protobuf wrap) and group configs (signed by the group key, several keys, no wrap): see
//! [`Config::new`].

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::{SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use super::bt::{self, Value};
use super::crypt::{self, Part, Plaintext, ENCRYPT_OVERHEAD, MAX_MESSAGE_SIZE};
use super::data::{prune, Data};
use super::message::{ConfigMessage, Hash, DEFAULT_LAG};
use super::wrap;
use crate::err::ConfigError;
use crate::keys::IdentityKeys;

/// How long an incomplete multipart set waits for its other parts, and how long a completed
/// set is remembered so that repeated parts are ignored (milliseconds).
pub const MULTIPART_MAX_WAIT_MS: u64 = 60 * 60 * 1000;

/// An incoming message whose seqno is this far above every other message's is kept aside (not
/// merged, not deleted): one buggy or hostile writer must not make every other message stale and
/// get them deleted.
pub const MAX_SEQNO_JUMP: i64 = 1_000_000;
/// At most this many incomplete multipart sets wait at once; the oldest are dropped first.
pub const MAX_PENDING_SETS: usize = 16;

/// The push state of a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Nothing to push: the current message is in the swarm.
    Clean = 0,
    /// Changed locally (or merged) and not pushed yet.
    Dirty = 1,
    /// Pushed, waiting for [`Config::confirm_pushed`].
    Waiting = 2,
}

/// What kind of config an object holds: where it lives and how it is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigType {
    /// Storage namespace.
    pub namespace: i16,
    /// Encryption domain.
    pub domain: &'static str,
    /// Whether messages are signed (group configs) and must verify.
    pub signed: bool,
    /// Whether single-part messages get the legacy protobuf wrapper (user configs).
    pub legacy_wrap: bool,
}

/// UserProfile, namespace 2.
pub const USER_PROFILE: ConfigType = ConfigType {
    namespace: 2,
    domain: "UserProfile",
    signed: false,
    legacy_wrap: true,
};
/// Contacts, namespace 3.
pub const CONTACTS: ConfigType = ConfigType {
    namespace: 3,
    domain: "Contacts",
    signed: false,
    legacy_wrap: true,
};
/// ConvoInfoVolatile, namespace 4.
pub const CONVO_INFO_VOLATILE: ConfigType = ConfigType {
    namespace: 4,
    domain: "ConvoInfoVolatile",
    signed: false,
    legacy_wrap: true,
};
/// UserGroups, namespace 5.
pub const USER_GROUPS: ConfigType = ConfigType {
    namespace: 5,
    domain: "UserGroups",
    signed: false,
    legacy_wrap: true,
};
/// The four user configs, in namespace order.
pub const USER_CONFIGS: [ConfigType; 4] =
    [USER_PROFILE, CONTACTS, CONVO_INFO_VOLATILE, USER_GROUPS];

/// The keys a config object works with.
#[derive(Debug)]
pub struct ConfigKeys {
    /// Symmetric key bases: the first encrypts, all are tried to decrypt.
    pub key_bases: Vec<Zeroizing<[u8; 32]>>,
    /// The account identity, for the legacy wrapper of user configs.
    pub identity: Option<IdentityKeys>,
    /// Signs outgoing messages (group admins).
    pub signer: Option<SigningKey>,
    /// Verifies incoming messages (group configs).
    pub verifier: Option<VerifyingKey>,
}

impl ConfigKeys {
    /// The keys of a user config: the account's Ed25519 seed, the identity for the wrapper, no
    /// signatures.
    pub fn user(identity: &IdentityKeys) -> Self {
        ConfigKeys {
            key_bases: vec![Zeroizing::new(*identity.seed())],
            identity: Some(IdentityKeys::from_seed(identity.seed())),
            signer: None,
            verifier: None,
        }
    }
}

/// What one push sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The seqno being pushed; pass it to [`Config::confirm_pushed`].
    pub seqno: i64,
    /// The messages to store (one, or the parts of a multipart set), raw bytes.
    pub messages: Vec<Vec<u8>>,
    /// Storage hashes to delete in the same request.
    pub obsolete: Vec<String>,
}

/// What one merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Storage hashes that were understood (whole messages and multipart parts).
    pub accepted: Vec<String>,
    /// Storage hashes that were skipped, with the reason (no content).
    pub skipped: Vec<(String, ConfigError)>,
    /// Whether the data changed.
    pub changed: bool,
}

/// A completed multipart set: the storage hashes of its parts and the joined message.
type Completed = (Vec<String>, Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    count: u8,
    /// index → (storage hash, part)
    parts: BTreeMap<u8, (String, Part)>,
    expires_ms: u64,
    done: bool,
}

/// One config object. See the module documentation for the call order.
#[derive(Debug)]
pub struct Config {
    ty: ConfigType,
    keys: ConfigKeys,
    msg: ConfigMessage,
    state: State,
    curr_hashes: BTreeSet<String>,
    old_hashes: BTreeSet<String>,
    multiparts: BTreeMap<Hash, Pending>,
    needs_dump: bool,
    lag: i64,
}

impl Config {
    /// A fresh, empty config (seqno 0). Group configs pass `verifier` (and `signer` for
    /// admins).
    pub fn new(ty: ConfigType, keys: ConfigKeys) -> Self {
        Config {
            ty,
            keys,
            msg: ConfigMessage::new(DEFAULT_LAG),
            state: State::Clean,
            curr_hashes: BTreeSet::new(),
            old_hashes: BTreeSet::new(),
            multiparts: BTreeMap::new(),
            needs_dump: false,
            lag: DEFAULT_LAG,
        }
    }

    /// A config restored from [`Config::dump`].
    pub fn load(
        ty: ConfigType,
        keys: ConfigKeys,
        dump: &[u8],
        now_ms: u64,
    ) -> Result<Self, ConfigError> {
        let mut c = Config::new(ty, keys);
        let v = Value::decode(dump).map_err(|_| ConfigError::Dump("not bt-encoded"))?;
        let Value::Dict(d) = v else {
            return Err(ConfigError::Dump("not a dict"));
        };
        let state = match d.get(&b"!"[..]) {
            Some(Value::Int(0)) => State::Clean,
            Some(Value::Int(1)) => State::Dirty,
            Some(Value::Int(2)) => State::Waiting,
            _ => return Err(ConfigError::Dump("bad state")),
        };
        let Some(Value::Bytes(msg)) = d.get(&b"$"[..]) else {
            return Err(ConfigError::Dump("no message"));
        };
        let parsed = ConfigMessage::parse(msg, None, c.lag, true)
            .map_err(|_| ConfigError::Dump("message does not parse"))?;
        c.msg = if state == State::Dirty {
            // Reload as a new increment: one seqno is "wasted", but a message that was sent
            // just before a crash is never re-used with other content.
            parsed.increment(c.keys.signer.as_ref())
        } else {
            parsed
        };
        c.state = state;
        c.curr_hashes = string_list(d.get(&b"("[..]))?;
        c.old_hashes = string_list(d.get(&b")"[..]))?;
        if let Some(Value::Dict(multi)) = d.get(&b"*"[..]) {
            for (k, v) in multi {
                let (Ok(h), Value::Dict(p)) = (<Hash>::try_from(k.as_slice()), v) else {
                    continue;
                };
                if let Some(pending) = load_pending(p, now_ms) {
                    c.multiparts.insert(h, pending);
                }
            }
        }
        Ok(c)
    }

    /// The config's type.
    pub fn config_type(&self) -> ConfigType {
        self.ty
    }

    /// The current data.
    pub fn data(&self) -> &Data {
        self.msg.data()
    }

    /// The current message.
    pub fn message(&self) -> &ConfigMessage {
        &self.msg
    }

    /// The current seqno.
    pub fn seqno(&self) -> i64 {
        self.msg.seqno()
    }

    /// The push state.
    pub fn state(&self) -> State {
        self.state
    }

    /// True when the config has unpushed changes (or a merge to push).
    pub fn needs_push(&self) -> bool {
        self.state != State::Clean
    }

    /// True when something changed since the last [`Config::dump`].
    pub fn needs_dump(&self) -> bool {
        self.needs_dump
    }

    /// True when this object can verify but not sign (a non-admin's group config).
    pub fn is_read_only(&self) -> bool {
        self.keys.verifier.is_some() && self.keys.signer.is_none()
    }

    /// The storage hashes of the current message.
    pub fn current_hashes(&self) -> &BTreeSet<String> {
        &self.curr_hashes
    }

    /// The storage hashes to keep alive (`expire`): the current message's and those of pending
    /// multipart parts.
    pub fn active_hashes(&self, now_ms: u64) -> BTreeSet<String> {
        let mut out = self.curr_hashes.clone();
        for p in self.multiparts.values() {
            if !p.done && p.expires_ms > now_ms {
                out.extend(p.parts.values().map(|(h, _)| h.clone()));
            }
        }
        out
    }

    /// Storage hashes that the next push will ask to delete.
    pub fn obsolete_hashes(&self) -> &BTreeSet<String> {
        &self.old_hashes
    }

    fn set_state(&mut self, s: State) {
        if self.state == State::Clean && !self.curr_hashes.is_empty() {
            let cur = std::mem::take(&mut self.curr_hashes);
            self.old_hashes.extend(cur);
        }
        self.state = s;
        self.needs_dump = true;
    }

    /// Changes the data with `f`. If the data (after pruning empty dicts and sets) differs, the
    /// config becomes dirty: the first change after a push increments the seqno. Unknown keys
    /// are untouched unless `f` touches them.
    pub fn edit<R>(&mut self, f: impl FnOnce(&mut Data) -> R) -> Result<R, ConfigError> {
        if self.is_read_only() {
            return Err(ConfigError::ReadOnly);
        }
        let mut data = self.msg.data().clone();
        let r = f(&mut data);
        prune(&mut data);
        if &data != self.msg.data() {
            if self.state != State::Dirty {
                self.set_state(State::Dirty);
                self.msg = self.msg.increment(self.keys.signer.as_ref());
            }
            self.needs_dump = true;
            *self
                .msg
                .data_mut()
                .expect("a dirty config holds a mutable message") = data;
        }
        Ok(r)
    }

    fn decrypt_any(&self, ct: &[u8]) -> Result<Vec<u8>, ConfigError> {
        for k in &self.keys.key_bases {
            if let Ok(p) = crypt::decrypt(ct, k, self.ty.domain) {
                return Ok(p);
            }
        }
        Err(ConfigError::Decrypt)
    }

    /// Merges messages retrieved from the namespace: `(storage hash, raw bytes)` pairs (the
    /// base64 already decoded). Messages that fail to unwrap, decrypt, decompress or parse are
    /// skipped and reported, never deleted; multipart parts wait for their set.
    pub fn merge(&mut self, incoming: &[(&str, &[u8])], now_ms: u64) -> MergeReport {
        let mut report = MergeReport::default();
        let old_seqno = self.msg.seqno();
        let was_dirty = self.state == State::Dirty;
        let mut all_hashes: Vec<Vec<String>> = Vec::new();
        let mut all_confs: Vec<Vec<u8>> = Vec::new();
        let has_mine = old_seqno != 0 || was_dirty;
        if has_mine {
            all_hashes.push(self.curr_hashes.iter().cloned().collect());
            all_confs.push(self.msg.serialize(self.keys.signer.as_ref()));
        }
        let first_incoming = all_confs.len();
        for (hash, data) in incoming {
            let unwrapped;
            let ct: &[u8] = match (&self.keys.identity, self.ty.legacy_wrap) {
                (Some(id), true) => {
                    unwrapped = wrap::unwrap_any(id, data, self.ty.namespace);
                    &unwrapped
                }
                _ => data,
            };
            let plain = match self.decrypt_any(ct).and_then(|p| crypt::classify(&p)) {
                Ok(p) => p,
                Err(e) => {
                    report.skipped.push((hash.to_string(), e));
                    continue;
                }
            };
            match plain {
                Plaintext::Message(m) => {
                    report.accepted.push(hash.to_string());
                    all_hashes.push(vec![hash.to_string()]);
                    all_confs.push(m);
                }
                Plaintext::Part(part) => match self.add_part(hash, part, now_ms) {
                    Ok(done) => {
                        report.accepted.push(hash.to_string());
                        if let Some((hashes, m)) = done {
                            all_hashes.push(hashes);
                            all_confs.push(m);
                        }
                    }
                    Err(e) => report.skipped.push((hash.to_string(), e)),
                },
            }
        }
        self.multiparts.retain(|_, p| p.expires_ms > now_ms);
        self.limit_pending();
        self.hold_back_far_ahead(&mut all_hashes, &mut all_confs, first_incoming, &mut report);
        if all_confs.len() == first_incoming {
            return report;
        }
        let refs: Vec<&[u8]> = all_confs.iter().map(|c| c.as_slice()).collect();
        let merged = match ConfigMessage::merge(
            &refs,
            self.keys.verifier.as_ref(),
            self.keys.signer.is_some(),
            self.lag,
        ) {
            Ok(m) => m,
            Err(_) => {
                // Nothing parsed (our own message always parses, so it was not included).
                for hs in all_hashes.iter().skip(first_incoming) {
                    for h in hs {
                        report.accepted.retain(|a| a != h);
                        report
                            .skipped
                            .push((h.clone(), ConfigError::Invalid("message does not parse")));
                    }
                }
                return report;
            }
        };
        let bad: BTreeSet<usize> = merged.bad.iter().map(|(i, _)| *i).collect();
        for (i, e) in &merged.bad {
            for h in &all_hashes[*i] {
                report.accepted.retain(|a| a != h);
                report.skipped.push((h.clone(), e.clone()));
            }
        }
        for (i, hs) in all_hashes.iter().enumerate() {
            if Some(i) != merged.unmerged && !bad.contains(&i) {
                self.old_hashes.extend(hs.iter().cloned());
            }
        }
        let mine_kept = has_mine && merged.unmerged == Some(0);
        if !mine_kept {
            match merged.unmerged {
                None => {
                    self.msg = merged.message.into_mutable(was_dirty);
                    self.set_state(State::Dirty);
                }
                Some(i) => {
                    self.msg = merged.message;
                    self.set_state(State::Clean);
                    self.curr_hashes = all_hashes[i].iter().cloned().collect();
                }
            }
            report.changed = true;
            self.needs_dump = true;
        }
        // Our current message may come back in a poll; it must never be deleted.
        for h in &self.curr_hashes {
            self.old_hashes.remove(h);
        }
        report
    }

    /// Moves incoming messages whose seqno is more than [`MAX_SEQNO_JUMP`] above every other
    /// message's out of the merge (reported as skipped).
    fn hold_back_far_ahead(
        &self,
        all_hashes: &mut Vec<Vec<String>>,
        all_confs: &mut Vec<Vec<u8>>,
        first_incoming: usize,
        report: &mut MergeReport,
    ) {
        let seqnos: Vec<Option<i64>> = all_confs.iter().map(|c| peek_seqno(c)).collect();
        let mut i = first_incoming;
        while i < all_confs.len() {
            let others = seqnos
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .filter_map(|(_, s)| *s)
                .max();
            let far = matches!((seqnos[i], others), (Some(s), Some(o)) if s > o.saturating_add(MAX_SEQNO_JUMP));
            if far {
                for h in &all_hashes[i] {
                    report.accepted.retain(|a| a != h);
                    report.skipped.push((
                        h.clone(),
                        ConfigError::Invalid("seqno far ahead of every other"),
                    ));
                }
                all_hashes.remove(i);
                all_confs.remove(i);
                return self.hold_back_far_ahead(all_hashes, all_confs, first_incoming, report);
            }
            i += 1;
        }
    }

    fn limit_pending(&mut self) {
        while self.multiparts.values().filter(|p| !p.done).count() > MAX_PENDING_SETS {
            let oldest = self
                .multiparts
                .iter()
                .filter(|(_, p)| !p.done)
                .min_by_key(|(_, p)| p.expires_ms)
                .map(|(h, _)| *h);
            match oldest {
                Some(h) => {
                    self.multiparts.remove(&h);
                }
                None => break,
            }
        }
    }

    fn add_part(
        &mut self,
        hash: &str,
        part: Part,
        now_ms: u64,
    ) -> Result<Option<Completed>, ConfigError> {
        let entry = self
            .multiparts
            .entry(part.set_hash)
            .or_insert_with(|| Pending {
                count: part.count,
                parts: BTreeMap::new(),
                expires_ms: now_ms + MULTIPART_MAX_WAIT_MS,
                done: false,
            });
        if entry.done || entry.parts.contains_key(&part.index) {
            return Ok(None);
        }
        if entry.count != part.count {
            return Err(ConfigError::Multipart("part count differs from the set's"));
        }
        entry.expires_ms = now_ms + MULTIPART_MAX_WAIT_MS;
        entry.parts.insert(part.index, (hash.to_string(), part));
        self.needs_dump = true;
        if entry.parts.len() < entry.count as usize {
            return Ok(None);
        }
        let refs: Vec<&Part> = entry.parts.values().map(|(_, p)| p).collect();
        let joined = crypt::join(&refs);
        let hashes: Vec<String> = entry.parts.values().map(|(h, _)| h.clone()).collect();
        entry.done = true;
        entry.parts.clear();
        Ok(Some((hashes, joined?)))
    }

    /// Builds the next push: serialize (signed for group admins), compress, pad, encrypt, and
    /// wrap (user configs, single part) or split (too large for one message). A dirty config
    /// becomes Waiting.
    pub fn push(&mut self) -> Result<Push, ConfigError> {
        let key = self
            .keys
            .key_bases
            .first()
            .ok_or(ConfigError::Value("no encryption key"))?;
        let seqno = self.msg.seqno();
        let serialized = self.msg.serialize(self.keys.signer.as_ref());
        let padded = crypt::pad(crypt::compress(serialized, crypt::COMPRESSION_LEVEL));
        let mut messages = Vec::new();
        if padded.len() + ENCRYPT_OVERHEAD > MAX_MESSAGE_SIZE {
            let parts = crypt::split(&padded)?;
            let set_hash = parts[0].set_hash;
            for p in parts {
                messages.push(crypt::encrypt(&p.encode(), key, self.ty.domain));
            }
            self.multiparts.insert(
                set_hash,
                Pending {
                    count: messages.len() as u8,
                    parts: BTreeMap::new(),
                    expires_ms: u64::MAX,
                    done: true,
                },
            );
        } else {
            let ct = crypt::encrypt(&padded, key, self.ty.domain);
            let wrapped = match (&self.keys.identity, self.ty.legacy_wrap) {
                (Some(id), true) => wrap::wrap(id, &ct, seqno, self.ty.namespace)
                    .filter(|w| w.len() <= MAX_MESSAGE_SIZE),
                _ => None,
            };
            messages.push(wrapped.unwrap_or(ct));
        }
        if self.state == State::Dirty {
            self.set_state(State::Waiting);
        }
        let obsolete = if self.is_read_only() {
            Vec::new()
        } else {
            self.old_hashes.iter().cloned().collect()
        };
        Ok(Push {
            seqno,
            messages,
            obsolete,
        })
    }

    /// Records that the push of `seqno` was stored under `hashes`. Ignored when the config
    /// changed again since (its seqno moved on) or was not waiting.
    pub fn confirm_pushed(&mut self, seqno: i64, hashes: &[String]) {
        if self.state == State::Waiting && seqno == self.msg.seqno() {
            self.set_state(State::Clean);
            self.curr_hashes = hashes.iter().cloned().collect();
            for h in hashes {
                self.old_hashes.remove(h);
            }
            self.needs_dump = true;
        }
    }

    /// A push failed before it was stored: the config is pushed again next time.
    pub fn push_failed(&mut self, seqno: i64) {
        if self.state == State::Waiting && seqno == self.msg.seqno() {
            self.state = State::Dirty;
            self.needs_dump = true;
        }
    }

    /// Drops hashes the storage server deleted (or no longer has) from the obsolete list.
    pub fn forget_obsolete(&mut self, hashes: &[String]) {
        for h in hashes {
            if self.old_hashes.remove(h) {
                self.needs_dump = true;
            }
        }
    }

    /// The persistent state: `d 1:! i<state>e 1:$ <message> 1:( l<current hashes>e
    /// 1:) l<old hashes>e 1:* d<pending multipart sets>e e` (libsession's layout). The message is
    /// stored unsigned (a kept signature stays).
    pub fn dump(&mut self, now_ms: u64) -> Vec<u8> {
        self.multiparts.retain(|_, p| p.expires_ms > now_ms);
        let mut d = bt::Dict::new();
        d.insert(b"!".to_vec(), Value::Int(self.state as i64));
        d.insert(b"$".to_vec(), Value::Bytes(self.msg.serialize(None)));
        let list = |s: &BTreeSet<String>| {
            Value::List(
                s.iter()
                    .map(|h| Value::Bytes(h.as_bytes().to_vec()))
                    .collect(),
            )
        };
        d.insert(b"(".to_vec(), list(&self.curr_hashes));
        d.insert(b")".to_vec(), list(&self.old_hashes));
        let mut multi = bt::Dict::new();
        for (h, p) in &self.multiparts {
            let mut pd = bt::Dict::new();
            pd.insert(
                b"#".to_vec(),
                Value::Int(if p.done { 0 } else { p.count as i64 }),
            );
            pd.insert(
                b"T".to_vec(),
                Value::Int(i64::try_from(p.expires_ms).unwrap_or(i64::MAX)),
            );
            if !p.done {
                let parts = p
                    .parts
                    .values()
                    .map(|(sh, part)| {
                        let mut e = bt::Dict::new();
                        e.insert(b"#".to_vec(), Value::Int(part.index as i64));
                        e.insert(b"M".to_vec(), Value::Bytes(sh.as_bytes().to_vec()));
                        e.insert(b"d".to_vec(), Value::Bytes(part.encode()));
                        Value::Dict(e)
                    })
                    .collect();
                pd.insert(b"p".to_vec(), Value::List(parts));
            }
            multi.insert(h.to_vec(), Value::Dict(pd));
        }
        d.insert(b"*".to_vec(), Value::Dict(multi));
        self.needs_dump = false;
        Value::Dict(d).encode()
    }
}

/// The seqno of a serialized message, read from its first key (`d1:#i<n>e`).
fn peek_seqno(msg: &[u8]) -> Option<i64> {
    let rest = msg.strip_prefix(b"d1:#i")?;
    let end = rest.iter().position(|&b| b == b'e')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

fn string_list(v: Option<&Value>) -> Result<BTreeSet<String>, ConfigError> {
    match v {
        None => Ok(BTreeSet::new()),
        // libsession before multipart stored one hash as a string.
        Some(Value::Bytes(b)) if b.is_empty() => Ok(BTreeSet::new()),
        Some(Value::Bytes(b)) => Ok(BTreeSet::from([
            String::from_utf8(b.clone()).map_err(|_| ConfigError::Dump("hash is not text"))?
        ])),
        Some(Value::List(l)) => {
            l.iter()
                .map(|x| match x {
                    Value::Bytes(b) => String::from_utf8(b.clone())
                        .map_err(|_| ConfigError::Dump("hash is not text")),
                    _ => Err(ConfigError::Dump("hash is not a string")),
                })
                .collect()
        }
        Some(_) => Err(ConfigError::Dump("hash list is not a list")),
    }
}

fn load_pending(p: &bt::Dict, now_ms: u64) -> Option<Pending> {
    let count = match p.get(&b"#"[..]) {
        Some(Value::Int(c)) => u8::try_from(*c).ok()?,
        _ => return None,
    };
    let expires_ms = match p.get(&b"T"[..]) {
        Some(Value::Int(t)) => u64::try_from(*t).ok()?,
        _ => return None,
    };
    if expires_ms <= now_ms {
        return None;
    }
    let mut parts = BTreeMap::new();
    if count > 0 {
        let Some(Value::List(list)) = p.get(&b"p"[..]) else {
            return None;
        };
        for e in list {
            let Value::Dict(e) = e else { continue };
            let (Some(Value::Bytes(m)), Some(Value::Bytes(d))) =
                (e.get(&b"M"[..]), e.get(&b"d"[..]))
            else {
                continue;
            };
            let (Ok(m), Ok(part)) = (String::from_utf8(m.clone()), Part::parse(d)) else {
                continue;
            };
            parts.insert(part.index, (m, part));
        }
    }
    Some(Pending {
        count: if count == 0 { 1 } else { count },
        parts,
        expires_ms,
        done: count == 0,
    })
}
