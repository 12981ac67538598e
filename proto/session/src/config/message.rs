//! One config message: its bt layout, its hash, its seqno increments and the deterministic merge
//! of several live messages.
//!
//! Byte layout (a bt dict, keys in bytewise order):
//!
//! ```text
//! d 1:# i<seqno>e                       seqno; must be the first key
//!   [unknown keys between # and &]
//!   1:& d…e                             data (see data.rs)
//!   [unknown keys between & and <]
//!   1:< l [l i<seqno>e 32:<hash> d…e] … e   lagged diffs, sorted by (seqno, hash)
//!   [unknown keys between < and =]
//!   1:= d…e                             this message's own diff
//!   [unknown keys between = and ~]
//!   [1:~ 64:<Ed25519 signature>]        optional; last; signs every byte before "1:~"
//! e
//! ```
//!
//! The hash of a message is the unkeyed BLAKE2b-256 of exactly these bytes. The lagged window keeps
//! diffs with `seqno − lag < s < seqno` (`lag` = 5 by default).

use std::borrow::Cow;
use std::collections::BTreeMap;

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use super::bt::{encode_bytes, encode_int, Reader, Value};
use super::data::{
    apply_diff, diff, is_pruned, prune, read_data, read_diff, write_data, write_diff,
};
use super::data::{Data, Diff};
use crate::err::ConfigError;

/// How many seqnos of diffs a message carries: libsession's `DEFAULT_DIFF_LAGS`.
pub const DEFAULT_LAG: i64 = 5;

/// The highest seqno we accept: far above any real history, low enough that `seqno + lag` and
/// `seqno + 1` never overflow.
pub const MAX_SEQNO: i64 = i64::MAX / 2;

/// A message hash: BLAKE2b-256 of its serialized bytes.
pub type Hash = [u8; 32];

/// (seqno, hash): the total order of messages. Ties of seqno are broken by the hash, bytewise.
pub type SeqHash = (i64, Hash);

/// The unkeyed BLAKE2b-256 of `bytes`.
pub fn hash_bytes(bytes: &[u8]) -> Hash {
    Blake2b::<U32>::digest(bytes).into()
}

/// How a message knows its own diff (`=`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum OwnDiff {
    /// As parsed (or computed once, for a merge result).
    Fixed(Diff),
    /// Mutable: the diff from this base to the current data, recomputed on serialization.
    Since(Data),
}

/// A parsed or locally built config message.
///
/// A message is **fixed** when parsed, and **mutable** after [`ConfigMessage::increment`] (or a
/// merge done while the owner had local edits); the data of a mutable message may change through
/// [`ConfigMessage::data_mut`] and its `=` is the diff since the increment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMessage {
    seqno: i64,
    data: Data,
    lagged: BTreeMap<SeqHash, Diff>,
    own: OwnDiff,
    unknown: BTreeMap<Vec<u8>, Value>,
    signature: Option<[u8; 64]>,
    hash: Hash,
    lag: i64,
}

/// What [`ConfigMessage::merge`] made of its inputs.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The resulting message.
    pub message: ConfigMessage,
    /// The input that *is* the result when no merge was needed (one input includes all others);
    /// `None` when a new merged message was made.
    pub unmerged: Option<usize>,
    /// Inputs that did not parse or verify, with the reason: never deleted by their owner (they
    /// may come from a newer client).
    pub bad: Vec<(usize, ConfigError)>,
}

impl Default for ConfigMessage {
    fn default() -> Self {
        ConfigMessage::new(DEFAULT_LAG)
    }
}

impl ConfigMessage {
    /// The empty seqno-0 message (`d1:#i0e1:&de1:<le1:=dee`).
    pub fn new(lag: i64) -> Self {
        let mut m = ConfigMessage {
            seqno: 0,
            data: Data::new(),
            lagged: BTreeMap::new(),
            own: OwnDiff::Fixed(Diff::new()),
            unknown: BTreeMap::new(),
            signature: None,
            hash: [0; 32],
            lag,
        };
        m.hash = hash_bytes(&m.serialize(None));
        m
    }

    /// An empty mutable message at `seqno`: everything set before the first serialization
    /// counts as this message's own change.
    pub fn new_mutable(seqno: i64, lag: i64) -> Self {
        let mut m = ConfigMessage::new(lag);
        m.seqno = seqno.clamp(0, MAX_SEQNO);
        m.own = OwnDiff::Since(Data::new());
        m
    }

    /// Parses `bytes`. With a `verifier`, a missing or bad signature is an error; without one a
    /// present signature is kept (when `trust_signature`) or dropped on re-serialization.
    pub fn parse(
        bytes: &[u8],
        verifier: Option<&VerifyingKey>,
        lag: i64,
        trust_signature: bool,
    ) -> Result<Self, ConfigError> {
        let mut r = Reader::new(bytes);
        r.enter()?;
        let k = r.key_after(None)?;
        if k != b"#" {
            return Err(ConfigError::Invalid("first key must be \"#\""));
        }
        let seqno = r.int()?;
        if !(0..=MAX_SEQNO).contains(&seqno) {
            return Err(ConfigError::Invalid("seqno out of range"));
        }
        let mut last: Vec<u8> = b"#".to_vec();
        let mut unknown = BTreeMap::new();
        let mut data = None;
        let mut lagged = BTreeMap::new();
        let mut own = Diff::new();
        let mut signature = None;
        loop {
            let key_at = r.position();
            if r.end()? {
                break;
            }
            let k = r.key_after(Some(&last))?;
            last = k.to_vec();
            match k {
                b"&" => data = Some(read_data(&mut r, true)?),
                b"<" if data.is_some() => lagged = read_lagged(&mut r, seqno, lag)?,
                b"=" if data.is_some() => own = read_diff(&mut r)?,
                b"~" => {
                    let sig: [u8; 64] = r
                        .bytes()?
                        .try_into()
                        .map_err(|_| ConfigError::Invalid("signature is not 64 bytes"))?;
                    if !r.end()? {
                        return Err(ConfigError::Invalid("keys after the signature"));
                    }
                    r.finish()?;
                    if let Some(vk) = verifier {
                        vk.verify_strict(&bytes[..key_at], &Signature::from_bytes(&sig))
                            .map_err(|_| ConfigError::BadSignature)?;
                    }
                    signature = (verifier.is_some() || trust_signature).then_some(sig);
                    return finish(bytes, seqno, data, lagged, own, unknown, signature, lag);
                }
                _ if data.is_none() && k > &b"&"[..] => {
                    return Err(ConfigError::Invalid("\"&\" data dict not found"));
                }
                _ => {
                    unknown.insert(k.to_vec(), r.value()?);
                }
            }
        }
        r.finish()?;
        if verifier.is_some() {
            return Err(ConfigError::MissingSignature);
        }
        finish(bytes, seqno, data, lagged, own, unknown, signature, lag)
    }

    /// The seqno.
    pub fn seqno(&self) -> i64 {
        self.seqno
    }

    /// The hash of the message as last parsed or computed. For a mutable message, call
    /// [`ConfigMessage::rehash`] after changing data.
    pub fn hash(&self) -> &Hash {
        &self.hash
    }

    /// (seqno, hash).
    pub fn seq_hash(&self) -> SeqHash {
        (self.seqno, self.hash)
    }

    /// The data.
    pub fn data(&self) -> &Data {
        &self.data
    }

    /// The lagged diffs, by (seqno, hash).
    pub fn lagged(&self) -> &BTreeMap<SeqHash, Diff> {
        &self.lagged
    }

    /// Unknown top-level keys, kept as they came.
    pub fn unknown(&self) -> &BTreeMap<Vec<u8>, Value> {
        &self.unknown
    }

    /// The signature kept from parsing, if any.
    pub fn signature(&self) -> Option<&[u8; 64]> {
        self.signature.as_ref()
    }

    /// True for a mutable message (after an increment).
    pub fn is_mutable(&self) -> bool {
        matches!(self.own, OwnDiff::Since(_))
    }

    /// The data of a mutable message, to change. Returns `None` for a fixed message (call
    /// [`ConfigMessage::increment`] first). Changing data drops any kept signature.
    pub fn data_mut(&mut self) -> Option<&mut Data> {
        if !self.is_mutable() {
            return None;
        }
        self.signature = None;
        Some(&mut self.data)
    }

    /// This message's own diff (`=`): as parsed, or recomputed for a mutable message.
    pub fn own_diff(&self) -> Cow<'_, Diff> {
        match &self.own {
            OwnDiff::Fixed(d) => Cow::Borrowed(d),
            OwnDiff::Since(base) => Cow::Owned(diff(base, &self.pruned_data())),
        }
    }

    /// The data without empty sets or dicts (a mutable message may hold some until it is
    /// serialized); borrowed when there are none.
    fn pruned_data(&self) -> Cow<'_, Data> {
        if is_pruned(&self.data) {
            Cow::Borrowed(&self.data)
        } else {
            let mut d = self.data.clone();
            prune(&mut d);
            Cow::Owned(d)
        }
    }

    /// Serializes the message. A mutable message is signed with `signer` when given; a fixed
    /// message re-uses the signature it was parsed with (if kept) and otherwise signs with
    /// `signer`.
    pub fn serialize(&self, signer: Option<&SigningKey>) -> Vec<u8> {
        let own = self.own_diff();
        let data = self.pruned_data();
        let mut out = Vec::with_capacity(256);
        out.push(b'd');
        encode_bytes(b"#", &mut out);
        encode_int(self.seqno, &mut out);
        let mut unknown = self.unknown.iter().peekable();
        let mut emit_unknown_before = |limit: &[u8], out: &mut Vec<u8>| {
            while let Some((k, v)) = unknown.next_if(|(k, _)| k.as_slice() < limit) {
                encode_bytes(k, out);
                v.encode_into(out);
            }
        };
        emit_unknown_before(b"&", &mut out);
        encode_bytes(b"&", &mut out);
        write_data(&data, &mut out);
        emit_unknown_before(b"<", &mut out);
        encode_bytes(b"<", &mut out);
        out.push(b'l');
        for ((s, h), d) in &self.lagged {
            if *s <= self.seqno - self.lag || *s >= self.seqno {
                continue;
            }
            out.push(b'l');
            encode_int(*s, &mut out);
            encode_bytes(h, &mut out);
            write_diff(d, &mut out);
            out.push(b'e');
        }
        out.push(b'e');
        emit_unknown_before(b"=", &mut out);
        encode_bytes(b"=", &mut out);
        write_diff(&own, &mut out);
        emit_unknown_before(b"~", &mut out);
        let sig = match (&self.signature, signer) {
            (Some(s), _) if !self.is_mutable() => Some(*s),
            (_, Some(sk)) => Some(sk.sign(&out).to_bytes()),
            _ => None,
        };
        if let Some(sig) = sig {
            encode_bytes(b"~", &mut out);
            encode_bytes(&sig, &mut out);
        }
        out.push(b'e');
        out
    }

    /// Recomputes the hash from the current serialization (with `signer`, as it will be sent).
    pub fn rehash(&mut self, signer: Option<&SigningKey>) -> &Hash {
        self.hash = hash_bytes(&self.serialize(signer));
        &self.hash
    }

    /// The next message: seqno + 1, this message's diff moved into the lagged diffs (those too
    /// old for the new seqno dropped), the same data, and an empty own diff. The result is
    /// mutable.
    pub fn increment(&self, signer: Option<&SigningKey>) -> ConfigMessage {
        let bytes = self.serialize(signer);
        let hash = hash_bytes(&bytes);
        let data = self.pruned_data().into_owned();
        let own = self.own_diff().into_owned();
        let new_seqno = self.seqno + 1;
        let mut lagged: BTreeMap<SeqHash, Diff> = self
            .lagged
            .iter()
            .filter(|((s, _), _)| *s > new_seqno - 1 - self.lag && *s < self.seqno)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        lagged.insert((self.seqno, hash), own);
        ConfigMessage {
            seqno: new_seqno,
            own: OwnDiff::Since(data.clone()),
            data,
            lagged,
            unknown: self.unknown.clone(),
            signature: None,
            hash: [0; 32],
            lag: self.lag,
        }
    }

    /// Makes a fixed message (a merge result) mutable at the same seqno, as libsession does
    /// before pushing it. With `had_local_edits` (the merger's own edits are already in its
    /// merged input) the own diff starts empty; without, it is the diff from an empty dict (every
    /// value "assigned"): libsession's `retain_seqno` conversion starts from empty data, and the
    /// bytes must match what a phone computes for the same merge.
    pub fn into_mutable(mut self, had_local_edits: bool) -> ConfigMessage {
        if !self.is_mutable() {
            let base = if had_local_edits {
                self.data.clone()
            } else {
                Data::new()
            };
            self.own = OwnDiff::Since(base);
            self.signature = None;
        }
        self
    }

    /// Merges serialized messages (libsession's `ConfigMessage(vector…)`).
    ///
    /// Unparseable (or, with a `verifier`, unsigned or badly signed) inputs are skipped and
    /// reported in [`Merged::bad`]. A message is redundant when another's lagged diffs include
    /// it or an earlier input is identical, and stale when `seqno + lag <= max seqno`. If one
    /// message is left it is the result as is. Otherwise the result has seqno `max + 1`, starts
    /// from the data of the highest (seqno, hash) message, and replays every diff known to the
    /// survivors in ascending (seqno, hash) order (for a diff known to several, the
    /// highest-ranked message's copy and data win). With a `verifier` but no `can_sign`, no
    /// merge is possible: the highest (seqno, hash) message is kept.
    ///
    /// The result is fixed, with an empty own diff; see [`ConfigMessage::into_mutable`] for
    /// how its owner continues. Fails only when no input parses.
    pub fn merge(
        inputs: &[&[u8]],
        verifier: Option<&VerifyingKey>,
        can_sign: bool,
        lag: i64,
    ) -> Result<Merged, ConfigError> {
        let mut bad = Vec::new();
        let mut configs: Vec<(usize, ConfigMessage, bool)> = Vec::new();
        for (i, bytes) in inputs.iter().enumerate() {
            match ConfigMessage::parse(bytes, verifier, lag, false) {
                Ok(m) => configs.push((i, m, false)),
                Err(e) => bad.push((i, e)),
            }
        }
        if configs.is_empty() {
            return Err(bad
                .pop()
                .map(|(_, e)| e)
                .unwrap_or(ConfigError::Invalid("no config messages given")));
        }
        let max_seqno = configs
            .iter()
            .map(|(_, m, _)| m.seqno)
            .max()
            .expect("configs is not empty");
        for i in 0..configs.len() {
            let sh = configs[i].1.seq_hash();
            let redundant = configs.iter().enumerate().any(|(j, (_, other, _))| {
                j != i && (other.lagged.contains_key(&sh) || (j < i && other.seq_hash() == sh))
            });
            configs[i].2 = redundant || configs[i].1.seqno + lag <= max_seqno;
        }
        let live: Vec<usize> = (0..configs.len()).filter(|&i| !configs[i].2).collect();
        if live.len() == 1 {
            let (idx, message, _) = configs.swap_remove(live[0]);
            return Ok(Merged {
                message,
                unmerged: Some(idx),
                bad,
            });
        }
        if verifier.is_some() && !can_sign {
            let best = configs
                .into_iter()
                .max_by(|a, b| (!a.2, a.1.seq_hash()).cmp(&(!b.2, b.1.seq_hash())))
                .expect("configs is not empty");
            return Ok(Merged {
                message: best.1,
                unmerged: Some(best.0),
                bad,
            });
        }
        let mut survivors: Vec<ConfigMessage> =
            configs.into_iter().filter(|c| !c.2).map(|c| c.1).collect();
        survivors.sort_by_key(|m| std::cmp::Reverse(m.seq_hash()));
        let mut data = survivors[0].data.clone();
        // The diffs move out of the survivors (only their data is needed from here on).
        let mut replay: BTreeMap<SeqHash, (usize, Diff)> = BTreeMap::new();
        for (i, m) in survivors.iter_mut().enumerate() {
            let own = match std::mem::replace(&mut m.own, OwnDiff::Fixed(Diff::new())) {
                OwnDiff::Fixed(d) => d,
                OwnDiff::Since(base) => diff(&base, &m.data),
            };
            replay.entry(m.seq_hash()).or_insert((i, own));
            for (sh, d) in std::mem::take(&mut m.lagged) {
                replay.entry(sh).or_insert((i, d));
            }
        }
        let mut lagged = BTreeMap::new();
        for (sh, (i, d)) in replay {
            apply_diff(&mut data, &d, &survivors[i].data);
            lagged.insert(sh, d);
        }
        prune(&mut data);
        let mut message = ConfigMessage {
            seqno: max_seqno + 1,
            own: OwnDiff::Fixed(Diff::new()),
            data,
            lagged,
            unknown: BTreeMap::new(),
            signature: None,
            hash: [0; 32],
            lag,
        };
        message.hash = hash_bytes(&message.serialize(None));
        Ok(Merged {
            message,
            unmerged: None,
            bad,
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn finish(
    bytes: &[u8],
    seqno: i64,
    data: Option<Data>,
    lagged: BTreeMap<SeqHash, Diff>,
    own: Diff,
    unknown: BTreeMap<Vec<u8>, Value>,
    signature: Option<[u8; 64]>,
    lag: i64,
) -> Result<ConfigMessage, ConfigError> {
    let data = data.ok_or(ConfigError::Invalid("\"&\" data dict not found"))?;
    Ok(ConfigMessage {
        seqno,
        data,
        lagged,
        own: OwnDiff::Fixed(own),
        unknown,
        signature,
        hash: hash_bytes(bytes),
        lag,
    })
}

/// Reads `<`: `[seqno, hash32, diff]` rows, strictly increasing, each below `seqno`; rows too
/// old for the lag are dropped.
fn read_lagged(
    r: &mut Reader<'_>,
    seqno: i64,
    lag: i64,
) -> Result<BTreeMap<SeqHash, Diff>, ConfigError> {
    r.enter()?;
    let mut out = BTreeMap::new();
    let mut last: Option<SeqHash> = None;
    while !r.end()? {
        r.enter()?;
        let s = r.int()?;
        if s >= seqno {
            return Err(ConfigError::Invalid("lagged seqno >= current seqno"));
        }
        let h: Hash = r
            .bytes()?
            .try_into()
            .map_err(|_| ConfigError::Invalid("lagged diff hash must be 32 bytes"))?;
        let d = read_diff(r)?;
        if !r.end()? {
            return Err(ConfigError::Invalid("lagged diff row must have 3 elements"));
        }
        r.leave();
        if s <= seqno - lag {
            continue;
        }
        if last.is_some_and(|l| (s, h) <= l) {
            return Err(ConfigError::Invalid("lagged diffs unsorted or duplicated"));
        }
        last = Some((s, h));
        out.insert((s, h), d);
    }
    r.leave();
    Ok(out)
}
