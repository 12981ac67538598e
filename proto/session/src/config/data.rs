//! The data of a config message (`&`) and its diffs (`=`, `<`): the value model, its strict
//! reading, its writing, the diff of two values and the replay of a diff.
//!
//! Data is a dict whose values are scalars (int or byte string), **sets** (a bt list: sorted,
//! no duplicates, ints before strings, never empty) or dicts (never empty below the top).
//!
//! A diff mirrors the shape of the data: `""` = a scalar was assigned (its value is read from the
//! message that carries the diff), `"-"` = a scalar was removed, a dict = changes inside a dict,
//! `[[added…], [removed…]]` = changes to a set.

use std::collections::{BTreeMap, BTreeSet};

use super::bt::{encode_bytes, encode_int, Reader};
use crate::err::ConfigError;

/// An int or a byte string: a data value, or an element of a set. Ints sort before strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scalar {
    /// A signed 64-bit integer.
    Int(i64),
    /// A byte string.
    Str(Vec<u8>),
}

/// One value in the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// An int or a byte string.
    Scalar(Scalar),
    /// A non-empty set of scalars.
    Set(BTreeSet<Scalar>),
    /// A nested dict (non-empty once pruned).
    Dict(Data),
}

/// A data dict.
pub type Data = BTreeMap<Vec<u8>, Field>;

/// One entry of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffOp {
    /// `""`: assigned.
    Assigned,
    /// `"-"`: removed.
    Removed,
    /// `[[added], [removed]]`.
    Set {
        /// Elements added, sorted.
        added: BTreeSet<Scalar>,
        /// Elements removed, sorted.
        removed: BTreeSet<Scalar>,
    },
    /// Changes inside a dict.
    Dict(Diff),
}

/// A diff dict.
pub type Diff = BTreeMap<Vec<u8>, DiffOp>;

// ---- reading -----------------------------------------------------------------------------------

/// Reads a data dict at the reader (`d…e`). `top` allows an empty dict.
pub(crate) fn read_data(r: &mut Reader<'_>, top: bool) -> Result<Data, ConfigError> {
    r.enter()?;
    let mut d = Data::new();
    let mut last: Option<&[u8]> = None;
    while !r.end()? {
        let k = r.key_after(last)?;
        last = Some(k);
        let v = match r.peek()? {
            b'i' => Field::Scalar(Scalar::Int(r.int()?)),
            b'0'..=b'9' => Field::Scalar(Scalar::Str(r.bytes()?.to_vec())),
            b'd' => Field::Dict(read_data(r, false)?),
            b'l' => Field::Set(read_set(r)?),
            _ => return Err(r.err("data value of an invalid type")),
        };
        d.insert(k.to_vec(), v);
    }
    r.leave();
    if !top && d.is_empty() {
        return Err(ConfigError::Invalid(
            "data contains an unpruned, empty dict",
        ));
    }
    Ok(d)
}

fn read_scalar(r: &mut Reader<'_>) -> Result<Scalar, ConfigError> {
    match r.peek()? {
        b'i' => Ok(Scalar::Int(r.int()?)),
        b'0'..=b'9' => Ok(Scalar::Str(r.bytes()?.to_vec())),
        _ => Err(ConfigError::Invalid("a set may hold only ints and strings")),
    }
}

/// Reads a sorted list of scalars; `nonempty` for data sets.
fn read_sorted(r: &mut Reader<'_>, nonempty: bool) -> Result<BTreeSet<Scalar>, ConfigError> {
    r.enter()?;
    let mut s = BTreeSet::new();
    let mut last: Option<Scalar> = None;
    while !r.end()? {
        let v = read_scalar(r)?;
        if last.as_ref().is_some_and(|l| &v <= l) {
            return Err(ConfigError::Invalid("set is unsorted or has duplicates"));
        }
        last = Some(v.clone());
        s.insert(v);
    }
    r.leave();
    if nonempty && s.is_empty() {
        return Err(ConfigError::Invalid("data contains an unpruned, empty set"));
    }
    Ok(s)
}

fn read_set(r: &mut Reader<'_>) -> Result<BTreeSet<Scalar>, ConfigError> {
    read_sorted(r, true)
}

/// Reads a diff dict at the reader.
pub(crate) fn read_diff(r: &mut Reader<'_>) -> Result<Diff, ConfigError> {
    r.enter()?;
    let mut d = Diff::new();
    let mut last: Option<&[u8]> = None;
    while !r.end()? {
        let k = r.key_after(last)?;
        last = Some(k);
        let op = match r.peek()? {
            b'0'..=b'9' => match r.bytes()? {
                b"" => DiffOp::Assigned,
                b"-" => DiffOp::Removed,
                _ => return Err(ConfigError::Invalid("diff string must be \"\" or \"-\"")),
            },
            b'l' => {
                r.enter()?;
                let added = read_sorted(r, false)?;
                let removed = read_sorted(r, false)?;
                if !r.end()? {
                    return Err(ConfigError::Invalid("set diff must have exactly 2 lists"));
                }
                r.leave();
                DiffOp::Set { added, removed }
            }
            b'd' => DiffOp::Dict(read_diff(r)?),
            _ => return Err(ConfigError::Invalid("diff value of an invalid type")),
        };
        d.insert(k.to_vec(), op);
    }
    r.leave();
    Ok(d)
}

// ---- writing -----------------------------------------------------------------------------------

fn write_scalar(s: &Scalar, out: &mut Vec<u8>) {
    match s {
        Scalar::Int(i) => encode_int(*i, out),
        Scalar::Str(b) => encode_bytes(b, out),
    }
}

fn write_set(s: &BTreeSet<Scalar>, out: &mut Vec<u8>) {
    out.push(b'l');
    for v in s {
        write_scalar(v, out);
    }
    out.push(b'e');
}

/// Appends the encoding of a data dict.
pub(crate) fn write_data(d: &Data, out: &mut Vec<u8>) {
    out.push(b'd');
    for (k, v) in d {
        encode_bytes(k, out);
        match v {
            Field::Scalar(s) => write_scalar(s, out),
            Field::Set(s) => write_set(s, out),
            Field::Dict(d) => write_data(d, out),
        }
    }
    out.push(b'e');
}

/// Appends the encoding of a diff dict.
pub(crate) fn write_diff(d: &Diff, out: &mut Vec<u8>) {
    out.push(b'd');
    for (k, v) in d {
        encode_bytes(k, out);
        match v {
            DiffOp::Assigned => encode_bytes(b"", out),
            DiffOp::Removed => encode_bytes(b"-", out),
            DiffOp::Set { added, removed } => {
                out.push(b'l');
                write_set(added, out);
                write_set(removed, out);
                out.push(b'e');
            }
            DiffOp::Dict(d) => write_diff(d, out),
        }
    }
    out.push(b'e');
}

// ---- prune, diff, replay -----------------------------------------------------------------------

/// Removes empty sets and empty dicts, recursively.
pub fn prune(d: &mut Data) {
    d.retain(|_, v| match v {
        Field::Scalar(_) => true,
        Field::Set(s) => !s.is_empty(),
        Field::Dict(sub) => {
            prune(sub);
            !sub.is_empty()
        }
    });
}

/// True when no set or dict (at any depth) is empty.
pub fn is_pruned(d: &Data) -> bool {
    d.values().all(|v| match v {
        Field::Scalar(_) => true,
        Field::Set(s) => !s.is_empty(),
        Field::Dict(sub) => !sub.is_empty() && is_pruned(sub),
    })
}

fn set_diff(old: &BTreeSet<Scalar>, new: &BTreeSet<Scalar>) -> Option<DiffOp> {
    let added: BTreeSet<Scalar> = new.difference(old).cloned().collect();
    let removed: BTreeSet<Scalar> = old.difference(new).cloned().collect();
    (!added.is_empty() || !removed.is_empty()).then_some(DiffOp::Set { added, removed })
}

fn added_op(v: &Field) -> DiffOp {
    match v {
        Field::Scalar(_) => DiffOp::Assigned,
        Field::Set(s) => DiffOp::Set {
            added: s.clone(),
            removed: BTreeSet::new(),
        },
        Field::Dict(d) => DiffOp::Dict(diff(&Data::new(), d)),
    }
}

fn removed_op(v: &Field) -> DiffOp {
    match v {
        Field::Scalar(_) => DiffOp::Removed,
        Field::Set(s) => DiffOp::Set {
            added: BTreeSet::new(),
            removed: s.clone(),
        },
        Field::Dict(d) => DiffOp::Dict(diff(d, &Data::new())),
    }
}

/// The diff that turns `old` into `new`. A change of type (scalar, set, dict) is written as the
/// new value's "added" form, which replaces the old value on replay.
pub fn diff(old: &Data, new: &Data) -> Diff {
    let mut out = Diff::new();
    for (k, o) in old {
        if !new.contains_key(k) {
            out.insert(k.clone(), removed_op(o));
        }
    }
    for (k, n) in new {
        let op = match (old.get(k), n) {
            (None, n) => Some(added_op(n)),
            (Some(Field::Scalar(a)), Field::Scalar(b)) => (a != b).then_some(DiffOp::Assigned),
            (Some(Field::Set(a)), Field::Set(b)) => set_diff(a, b),
            (Some(Field::Dict(a)), Field::Dict(b)) => {
                let d = diff(a, b);
                (!d.is_empty()).then_some(DiffOp::Dict(d))
            }
            (Some(_), n) => Some(added_op(n)),
        };
        if let Some(op) = op {
            out.insert(k.clone(), op);
        }
    }
    out
}

/// Replays `diff` onto `data`, taking assigned values from `source` (the data of the message
/// that carried the diff). A key whose source is missing or of another type than the diff says
/// is deleted: a later diff will set it again if it should exist. Leaves empty containers for
/// [`prune`].
pub fn apply_diff(data: &mut Data, diff: &Diff, source: &Data) {
    for (k, op) in diff {
        let src = source.get(k);
        let matches = matches!(
            (op, src),
            (DiffOp::Assigned | DiffOp::Removed, Some(Field::Scalar(_)))
                | (DiffOp::Set { .. }, Some(Field::Set(_)))
                | (DiffOp::Dict(_), Some(Field::Dict(_)))
        );
        if !matches {
            data.remove(k);
            continue;
        }
        match (op, src) {
            (DiffOp::Removed, _) => {
                data.remove(k);
            }
            (DiffOp::Assigned, Some(Field::Scalar(v))) => match data.get_mut(k) {
                Some(slot) => *slot = Field::Scalar(v.clone()),
                None => {
                    data.insert(k.clone(), Field::Scalar(v.clone()));
                }
            },
            (DiffOp::Dict(sub), Some(Field::Dict(src_sub))) => {
                if !data.contains_key(k) {
                    data.insert(k.clone(), Field::Dict(Data::new()));
                }
                let slot = data.get_mut(k).expect("inserted above");
                if !matches!(slot, Field::Dict(_)) {
                    *slot = Field::Dict(Data::new());
                }
                if let Field::Dict(d) = slot {
                    apply_diff(d, sub, src_sub);
                }
            }
            (DiffOp::Set { added, removed }, _) => {
                let slot = data
                    .entry(k.clone())
                    .or_insert_with(|| Field::Set(BTreeSet::new()));
                if !matches!(slot, Field::Set(_)) {
                    *slot = Field::Set(BTreeSet::new());
                }
                if let Field::Set(s) = slot {
                    s.extend(added.iter().cloned());
                    for r in removed {
                        s.remove(r);
                    }
                }
            }
            _ => unreachable!("type agreement checked above"),
        }
    }
}

// ---- helpers for typed views -------------------------------------------------------------------

/// Typed reading and writing of data fields, following libsession's conventions: flags are 1 or
/// absent, "positive" ints are absent when ≤ 0, "non-empty" strings are absent when empty.
pub mod fields {
    use super::{Data, Field, Scalar};

    /// The int at `key`, if it is an int.
    pub fn int(d: &Data, key: &[u8]) -> Option<i64> {
        match d.get(key) {
            Some(Field::Scalar(Scalar::Int(i))) => Some(*i),
            _ => None,
        }
    }

    /// The byte string at `key`, if it is a string.
    pub fn bytes<'a>(d: &'a Data, key: &[u8]) -> Option<&'a [u8]> {
        match d.get(key) {
            Some(Field::Scalar(Scalar::Str(s))) => Some(s),
            _ => None,
        }
    }

    /// The string at `key` as UTF-8 (invalid sequences replaced).
    pub fn string(d: &Data, key: &[u8]) -> Option<String> {
        bytes(d, key).map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// The dict at `key`, if it is a dict.
    pub fn dict<'a>(d: &'a Data, key: &[u8]) -> Option<&'a Data> {
        match d.get(key) {
            Some(Field::Dict(x)) => Some(x),
            _ => None,
        }
    }

    /// The dict at `key`, created (replacing any other type) if needed.
    pub fn dict_mut<'a>(d: &'a mut Data, key: &[u8]) -> &'a mut Data {
        let slot = d
            .entry(key.to_vec())
            .or_insert_with(|| Field::Dict(Data::new()));
        if !matches!(slot, Field::Dict(_)) {
            *slot = Field::Dict(Data::new());
        }
        match slot {
            Field::Dict(x) => x,
            _ => unreachable!("just made it a dict"),
        }
    }

    /// A flag: true iff the int at `key` is non-zero.
    pub fn flag(d: &Data, key: &[u8]) -> bool {
        int(d, key).is_some_and(|i| i != 0)
    }

    /// Sets `key` to 1 or removes it.
    pub fn set_flag(d: &mut Data, key: &[u8], on: bool) {
        set_int_if(d, key, 1, on);
    }

    /// Sets `key` to `v`, or removes it when `keep` is false.
    pub fn set_int_if(d: &mut Data, key: &[u8], v: i64, keep: bool) {
        if keep {
            d.insert(key.to_vec(), Field::Scalar(Scalar::Int(v)));
        } else {
            d.remove(key);
        }
    }

    /// Sets `key` to `v` when `v > 0`, else removes it.
    pub fn set_positive(d: &mut Data, key: &[u8], v: i64) {
        set_int_if(d, key, v, v > 0);
    }

    /// Sets `key` to `v` when `v != 0`, else removes it.
    pub fn set_nonzero(d: &mut Data, key: &[u8], v: i64) {
        set_int_if(d, key, v, v != 0);
    }

    /// Sets `key` to the string `v` (even when empty).
    pub fn set_bytes(d: &mut Data, key: &[u8], v: &[u8]) {
        d.insert(key.to_vec(), Field::Scalar(Scalar::Str(v.to_vec())));
    }

    /// Sets `key` to `v` when non-empty, else removes it.
    pub fn set_nonempty(d: &mut Data, key: &[u8], v: &[u8]) {
        if v.is_empty() {
            d.remove(key);
        } else {
            set_bytes(d, key, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Result<Data, ConfigError> {
        let mut r = Reader::new(b);
        let d = read_data(&mut r, true)?;
        r.finish()?;
        Ok(d)
    }

    #[test]
    fn data_rules() {
        assert!(parse(b"d1:ali1ei2e1:aee").is_ok());
        for bad in [
            &b"d1:alee"[..],
            b"d1:adee",
            b"d1:ali2ei1eee",
            b"d1:ali1ei1eee",
            b"d1:al1:ai1eee",
            b"d1:alleee",
            b"d1:b0:1:a0:e",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn diff_then_apply_gives_new() {
        let old = parse(b"d1:ai1e1:bd1:xi1ee1:cli1e1:zee").expect("old");
        let new = parse(b"d1:ad1:yi2ee1:bd1:xi2ee1:cli2e1:zee").expect("new");
        let d = diff(&old, &new);
        let mut data = old.clone();
        apply_diff(&mut data, &d, &new);
        prune(&mut data);
        assert_eq!(data, new);
    }
}
