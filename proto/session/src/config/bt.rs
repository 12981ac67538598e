//! Strict bt-encoding (bencode) of config messages: any value, canonical form only.
//!
//! Byte layout: `i<int>e` (base 10, no leading zeros, no `-0`), `<len>:<bytes>`, `l…e`,
//! `d…e` with keys (byte strings) strictly increasing bytewise. Integers are signed 64-bit, as
//! libsession reads them. The reader refuses anything a canonical writer would not produce, so a
//! value read and written again gives the same bytes.

use std::collections::BTreeMap;

use crate::err::ConfigError;

/// A dict: byte-string keys in bytewise order.
pub type Dict = BTreeMap<Vec<u8>, Value>;

/// Deepest nesting the reader follows (configs use at most five levels).
const MAX_DEPTH: usize = 64;

/// Any bt value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
            Value::Int(i) => encode_int(*i, out),
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

    /// Decodes exactly one value that spans all of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Value, ConfigError> {
        let mut r = Reader::new(buf);
        let v = r.value()?;
        r.finish()?;
        Ok(v)
    }
}

/// Appends `i<n>e`.
pub fn encode_int(n: i64, out: &mut Vec<u8>) {
    out.push(b'i');
    out.extend_from_slice(n.to_string().as_bytes());
    out.push(b'e');
}

/// Appends `<len>:<bytes>`.
pub fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

/// A cursor over bt bytes. Every method either consumes a well-formed item or returns an
/// error naming the offset.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            at: 0,
            depth: 0,
        }
    }

    /// The current offset.
    pub fn position(&self) -> usize {
        self.at
    }

    /// The next byte, without consuming it.
    pub fn peek(&self) -> Result<u8, ConfigError> {
        self.buf
            .get(self.at)
            .copied()
            .ok_or_else(|| self.err("truncated"))
    }

    /// An error at the current offset.
    pub fn err(&self, reason: &'static str) -> ConfigError {
        ConfigError::Bt {
            at: self.at,
            reason,
        }
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), ConfigError> {
        if self.at == self.buf.len() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }

    /// Consumes `byte` or fails.
    pub fn expect(&mut self, byte: u8, reason: &'static str) -> Result<(), ConfigError> {
        if self.peek()? == byte {
            self.at += 1;
            Ok(())
        } else {
            Err(self.err(reason))
        }
    }

    /// Consumes the `e` that ends a list or dict if it is next; true if it was.
    pub fn end(&mut self) -> Result<bool, ConfigError> {
        if self.peek()? == b'e' {
            self.at += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Reads `<len>:<bytes>`.
    pub fn bytes(&mut self) -> Result<&'a [u8], ConfigError> {
        let start = self.at;
        while self.peek()?.is_ascii_digit() {
            self.at += 1;
        }
        let digits = &self.buf[start..self.at];
        if digits.is_empty() {
            return Err(self.err("expected a string"));
        }
        if (digits.len() > 1 && digits[0] == b'0') || digits.len() > 10 {
            return Err(ConfigError::Bt {
                at: start,
                reason: "bad string length",
            });
        }
        let len: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(ConfigError::Bt {
                at: start,
                reason: "bad string length",
            })?;
        self.expect(b':', "expected ':' after a string length")?;
        let end = self
            .at
            .checked_add(len)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err("string runs past the end"))?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }

    /// Reads `i<n>e` (signed 64-bit, canonical).
    pub fn int(&mut self) -> Result<i64, ConfigError> {
        self.expect(b'i', "expected an integer")?;
        let start = self.at;
        if self.peek()? == b'-' {
            self.at += 1;
        }
        let digits_start = self.at;
        while self.peek()?.is_ascii_digit() {
            self.at += 1;
        }
        let digits = &self.buf[digits_start..self.at];
        let leading_zero = digits.len() > 1 && digits[0] == b'0';
        let minus_zero = digits == b"0" && digits_start != start;
        let canonical = !digits.is_empty() && !leading_zero && !minus_zero;
        if !canonical {
            return Err(ConfigError::Bt {
                at: start,
                reason: "non-canonical integer",
            });
        }
        let n = std::str::from_utf8(&self.buf[start..self.at])
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or(ConfigError::Bt {
                at: start,
                reason: "integer out of 64-bit range",
            })?;
        self.expect(b'e', "expected 'e' after an integer")?;
        Ok(n)
    }

    /// Reads any value.
    pub fn value(&mut self) -> Result<Value, ConfigError> {
        match self.peek()? {
            b'i' => Ok(Value::Int(self.int()?)),
            b'0'..=b'9' => Ok(Value::Bytes(self.bytes()?.to_vec())),
            b'l' => {
                self.enter()?;
                let mut items = Vec::new();
                while !self.end()? {
                    items.push(self.value()?);
                }
                self.depth -= 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.enter()?;
                let mut d = Dict::new();
                let mut last: Option<&[u8]> = None;
                while !self.end()? {
                    let k = self.key_after(last)?;
                    last = Some(k);
                    let v = self.value()?;
                    d.insert(k.to_vec(), v);
                }
                self.depth -= 1;
                Ok(Value::Dict(d))
            }
            _ => Err(self.err("expected a value")),
        }
    }

    /// Consumes the `l` or `d` that opens a container, counting depth.
    pub fn enter(&mut self) -> Result<(), ConfigError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        let b = self.peek()?;
        if b != b'l' && b != b'd' {
            return Err(self.err("expected a list or dict"));
        }
        self.at += 1;
        self.depth += 1;
        Ok(())
    }

    /// Leaves a container entered with [`Reader::enter`] whose `e` was consumed by
    /// [`Reader::end`].
    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Reads a dict key that must sort strictly after `last`.
    pub fn key_after(&mut self, last: Option<&[u8]>) -> Result<&'a [u8], ConfigError> {
        let at = self.at;
        let k = self.bytes()?;
        if last.is_some_and(|l| k <= l) {
            return Err(ConfigError::Bt {
                at,
                reason: "dict keys out of order",
            });
        }
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let good: &[&[u8]] = &[
            b"i0e",
            b"i-7e",
            b"i9223372036854775807e",
            b"0:",
            b"3:abc",
            b"le",
            b"li1e1:ae",
            b"de",
            b"d1:ai1e1:bd1:cleee",
        ];
        for g in good {
            let v = Value::decode(g).expect("decodes");
            assert_eq!(&v.encode()[..], *g);
        }
        let bad: &[&[u8]] = &[
            b"",
            b"i-0e",
            b"i01e",
            b"ie",
            b"i-e",
            b"i9223372036854775808e",
            b"01:a",
            b"4:abc",
            b"l",
            b"d1:bi1e1:ai2ee",
            b"d1:ai1e1:ai2ee",
            b"di1ei2ee",
            b"x",
            b"i1ei2e",
            b"99999999999:",
        ];
        for b in bad {
            assert!(
                Value::decode(b).is_err(),
                "{:?}",
                String::from_utf8_lossy(b)
            );
        }
        let deep = [vec![b'l'; 100], vec![b'e'; 100]].concat();
        assert!(Value::decode(&deep).is_err());
    }
}
