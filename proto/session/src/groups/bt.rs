//! The bt-encoding (bencode) of group keys messages, group message payloads and multi-recipient
//! boxes: any value, canonical form only.
//!
//! Byte layout: `i<int>e` (base 10, no leading zeros, no `-0`), `<len>:<bytes>`, `l…e`, `d…e`
//! with byte-string keys strictly increasing bytewise. The reader refuses anything a canonical
//! writer would not produce, so a value read and written again gives the same bytes; that is
//! what lets a signature over "the message up to `1:~64:`" be checked on the bytes as received.

use std::collections::BTreeMap;

use crate::err::GroupError;

/// A dict: byte-string keys in bytewise order.
pub type Dict = BTreeMap<Vec<u8>, Value>;

/// Deepest nesting the reader follows (group formats use at most three levels).
const MAX_DEPTH: usize = 32;

/// Any bt value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `i…e`.
    Int(i64),
    /// `<len>:<bytes>`.
    Bytes(Vec<u8>),
    /// `l…e`.
    List(Vec<Value>),
    /// `d…e`.
    Dict(Dict),
}

impl Value {
    /// Appends the encoding of `self` to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Value::Bytes(b) => encode_bytes(b, out),
            Value::List(l) => {
                out.push(b'l');
                for v in l {
                    v.encode_into(out);
                }
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    encode_bytes(k, out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The encoding of `self`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decodes exactly one canonical value filling all of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Value, GroupError> {
        let mut r = Reader { buf, at: 0 };
        let v = r.value(0)?;
        if r.at != buf.len() {
            return Err(bad(r.at, "trailing bytes after the value"));
        }
        Ok(v)
    }

    /// The dict, if this is one.
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The list, if this is one.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The bytes, if this is a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// Appends `<len>:<bytes>`.
pub fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

fn bad(at: usize, reason: &'static str) -> GroupError {
    GroupError::Bt { at, reason }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Result<u8, GroupError> {
        self.buf
            .get(self.at)
            .copied()
            .ok_or(bad(self.at, "input ends early"))
    }

    /// Digits up to `stop`, as a number without leading zeros (`-` allowed when `signed`).
    fn number(&mut self, stop: u8, signed: bool) -> Result<i64, GroupError> {
        let start = self.at;
        let neg = signed && self.peek()? == b'-';
        if neg {
            self.at += 1;
        }
        let digits_start = self.at;
        while self.peek()?.is_ascii_digit() {
            self.at += 1;
        }
        let digits = &self.buf[digits_start..self.at];
        if self.peek()? != stop {
            return Err(bad(self.at, "unexpected byte in a number"));
        }
        self.at += 1;
        if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
            return Err(bad(start, "number with no digits or a leading zero"));
        }
        if neg && digits == b"0" {
            return Err(bad(start, "negative zero"));
        }
        let mut n: i64 = 0;
        for &d in digits {
            let d = i64::from(d - b'0');
            n = n
                .checked_mul(10)
                .and_then(|n| {
                    if neg {
                        n.checked_sub(d)
                    } else {
                        n.checked_add(d)
                    }
                })
                .ok_or(bad(start, "integer out of range"))?;
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, GroupError> {
        let start = self.at;
        let len = self.number(b':', false)?;
        let len = usize::try_from(len).map_err(|_| bad(start, "bad string length"))?;
        let end = self
            .at
            .checked_add(len)
            .filter(|&e| e <= self.buf.len())
            .ok_or(bad(start, "string runs past the end"))?;
        let out = self.buf[self.at..end].to_vec();
        self.at = end;
        Ok(out)
    }

    fn value(&mut self, depth: usize) -> Result<Value, GroupError> {
        if depth > MAX_DEPTH {
            return Err(bad(self.at, "nested too deeply"));
        }
        match self.peek()? {
            b'i' => {
                self.at += 1;
                Ok(Value::Int(self.number(b'e', true)?))
            }
            b'0'..=b'9' => Ok(Value::Bytes(self.bytes()?)),
            b'l' => {
                self.at += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.at += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.at += 1;
                let mut dict = Dict::new();
                while self.peek()? != b'e' {
                    let key_at = self.at;
                    if !self.peek()?.is_ascii_digit() {
                        return Err(bad(key_at, "dict key is not a string"));
                    }
                    let key = self.bytes()?;
                    if dict.keys().next_back().is_some_and(|last| *last >= key) {
                        return Err(bad(key_at, "dict keys out of order or repeated"));
                    }
                    let v = self.value(depth + 1)?;
                    dict.insert(key, v);
                }
                self.at += 1;
                Ok(Value::Dict(dict))
            }
            _ => Err(bad(self.at, "not the start of a value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_canonical_values() {
        let cases: [&[u8]; 7] = [
            b"i0e",
            b"i-42e",
            b"0:",
            b"le",
            b"de",
            b"d0:i1e1:a3:abc1:ll4:spami9223372036854775807eee",
            b"li-9223372036854775808ed1:xdeee",
        ];
        for c in cases {
            let v = Value::decode(c).expect("decodes");
            assert_eq!(v.encode(), c, "{}", String::from_utf8_lossy(c));
        }
    }

    #[test]
    fn refuses_non_canonical_and_malformed() {
        let cases: [&[u8]; 20] = [
            b"",
            b"i",
            b"ie",
            b"i01e",
            b"i-0e",
            b"i-e",
            b"i9223372036854775808e",
            b"01:a",
            b"2:a",
            b"l",
            b"d1:ai1e",
            b"d1:bi1e1:ai2ee",
            b"d1:ai1e1:ai2ee",
            b"di1ei2ee",
            b"x",
            b"i1ei2e",
            b"-1:",
            b"99999999999999999999:",
            b"3:abcd",
            b"d1:a",
        ];
        for c in cases {
            assert!(Value::decode(c).is_err(), "{}", String::from_utf8_lossy(c));
        }
        let deep = format!("{}{}", "l".repeat(100), "e".repeat(100));
        assert!(Value::decode(deep.as_bytes()).is_err());
    }
}
