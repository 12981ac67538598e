//! JSON encodings of the storage-RPC field types: hex account ids, base64 signatures and data,
//! subaccount tokens, `"all"`-or-integer namespaces, and the legacy integer-or-string numbers.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Smallest accepted timestamp: values below 1,000,000 **seconds** since the epoch (as ms) are
/// taken to be seconds sent by mistake and rejected, as the storage server does.
pub const MIN_TIMESTAMP_MS: u64 = 1_000_000_000;

/// Decodes standard base64, with or without `=` padding (the storage server accepts both).
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let trimmed = s
        .strip_suffix("==")
        .or_else(|| s.strip_suffix('='))
        .unwrap_or(s);
    if trimmed.len() != s.len() && s.len() % 4 != 0 {
        return None;
    }
    STANDARD_NO_PAD.decode(trimmed).ok()
}

/// Encodes standard base64 with padding (what the storage server and clients send).
pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn decode_hex_exact<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// A 33-byte account id as the storage server sees it (`pubkey` param): network prefix byte
/// (`05` Session ID, `03` group, …) followed by 32 key bytes. JSON form: 66 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserPubkey(pub [u8; 33]);

impl UserPubkey {
    /// Parses 66 hex digits.
    pub fn from_hex(s: &str) -> Option<UserPubkey> {
        decode_hex_exact::<33>(s).map(UserPubkey)
    }
    /// The network prefix byte (`0x05`, `0x03`, …).
    pub fn prefix(&self) -> u8 {
        self.0[0]
    }
    /// The 32 key bytes after the prefix.
    pub fn key(&self) -> &[u8; 32] {
        self.0[1..]
            .try_into()
            .expect("33 bytes minus the prefix byte is 32 bytes")
    }
    /// The 66-hex-digit form, as used in JSON and in per-node result signatures.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for UserPubkey {
    // Account IDs are kept out of logs: show the prefix and a short tail only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UserPubkey({:02x}…{})",
            self.0[0],
            hex::encode(&self.0[31..])
        )
    }
}

/// An Ed25519 signature; JSON form: base64 (88 chars padded; 86 unpadded also accepted).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sig(pub [u8; 64]);

impl fmt::Debug for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sig({}…)", hex::encode(&self.0[..4]))
    }
}

impl Sig {
    /// Parses the JSON form: 86 base64 chars, or 88 ending in `==`.
    pub fn from_base64(s: &str) -> Option<Sig> {
        if !(s.len() == 86 || (s.len() == 88 && s.ends_with("=="))) {
            return None;
        }
        decode_base64(s)?.try_into().ok().map(Sig)
    }
    /// The padded base64 form.
    pub fn to_base64(&self) -> String {
        encode_base64(&self.0)
    }
}

/// A 32-byte Ed25519 public key; JSON form: 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ed25519Pubkey(pub [u8; 32]);

impl Ed25519Pubkey {
    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Ed25519Pubkey> {
        decode_hex_exact::<32>(s).map(Ed25519Pubkey)
    }
    /// The 64-hex-digit form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Ed25519Pubkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ed25519Pubkey({}…)", hex::encode(&self.0[..4]))
    }
}

/// A 32-byte X25519 public key (a snode's onion key); JSON form: 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct X25519Pubkey(pub [u8; 32]);

impl X25519Pubkey {
    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<X25519Pubkey> {
        decode_hex_exact::<32>(s).map(X25519Pubkey)
    }
    /// The 64-hex-digit form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for X25519Pubkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "X25519Pubkey({}…)", hex::encode(&self.0[..4]))
    }
}

/// Length of a subaccount token.
pub const SUBACCOUNT_TOKEN_LEN: usize = 36;

/// A subaccount token: `[prefix 1][flags 1][reserved 2][ed25519 pubkey 32]`. JSON form: base64
/// (48 chars) or hex (72 chars); written as base64.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SubaccountToken(pub [u8; SUBACCOUNT_TOKEN_LEN]);

impl fmt::Debug for SubaccountToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubaccountToken(flags={:#04x})", self.flags())
    }
}

impl SubaccountToken {
    /// Flag bit: may read (retrieve, get_expiries).
    pub const READ: u8 = 1;
    /// Flag bit: may write (store, expire).
    pub const WRITE: u8 = 2;
    /// Flag bit: may delete (delete, delete_all, expire shorten, public-outbox stores).
    pub const DELETE: u8 = 4;
    /// Flag bit: valid for any account prefix, not only the token's own prefix byte.
    pub const ANY_PREFIX: u8 = 8;

    /// Parses the JSON form (48 base64 chars or 72 hex digits).
    pub fn parse(s: &str) -> Option<SubaccountToken> {
        if s.len() == SUBACCOUNT_TOKEN_LEN * 4 / 3 {
            decode_base64(s)?.try_into().ok().map(SubaccountToken)
        } else {
            decode_hex_exact::<SUBACCOUNT_TOKEN_LEN>(s).map(SubaccountToken)
        }
    }
    /// The account prefix byte the token is for.
    pub fn prefix(&self) -> u8 {
        self.0[0]
    }
    /// The permission flags byte.
    pub fn flags(&self) -> u8 {
        self.0[1]
    }
    /// The subaccount's Ed25519 public key (it signs requests made with the token).
    pub fn pubkey(&self) -> &[u8; 32] {
        self.0[4..]
            .try_into()
            .expect("36-byte token minus the 4-byte header is 32 bytes")
    }
}

/// Bytes that travel as standard base64 in JSON (message `data`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Base64Bytes(pub Vec<u8>);

impl fmt::Debug for Base64Bytes {
    // Message bodies never reach logs: only the length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64Bytes({} bytes)", self.0.len())
    }
}

/// A namespace parameter that may also be `"all"` (`delete_all`, `delete_before`, `expire_all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamespaceOrAll {
    /// One namespace.
    Ns(i16),
    /// Every namespace of the account.
    All,
}

impl Default for NamespaceOrAll {
    fn default() -> Self {
        NamespaceOrAll::Ns(0)
    }
}

impl NamespaceOrAll {
    /// The namespace's part of a signed message: `"all"`, empty for 0, else base-10.
    pub fn sig_str(&self) -> String {
        match self {
            NamespaceOrAll::Ns(ns) => super::ns_str(*ns),
            NamespaceOrAll::All => "all".to_owned(),
        }
    }
}

/// A value that JSON may give as one item or a list (`messages`, `expiry`); always a list here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OneOrMany<T>(pub Vec<T>);

// ---------------------------------------------------------------------------------------------
// serde impls
// ---------------------------------------------------------------------------------------------

macro_rules! string_serde {
    ($ty:ty, $expect:literal, $parse:expr, $write:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let write: fn(&$ty) -> String = $write;
                s.serialize_str(&write(self))
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expect)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        let parse: fn(&str) -> Option<$ty> = $parse;
                        parse(v).ok_or_else(|| E::custom(concat!("expected ", $expect)))
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

string_serde!(
    UserPubkey,
    "66 hex digits (33-byte account id)",
    UserPubkey::from_hex,
    UserPubkey::to_hex
);
string_serde!(
    Sig,
    "base64 Ed25519 signature (86 or 88 chars)",
    Sig::from_base64,
    Sig::to_base64
);
string_serde!(
    Ed25519Pubkey,
    "64 hex digits (Ed25519 public key)",
    Ed25519Pubkey::from_hex,
    Ed25519Pubkey::to_hex
);
string_serde!(
    X25519Pubkey,
    "64 hex digits (X25519 public key)",
    X25519Pubkey::from_hex,
    X25519Pubkey::to_hex
);
string_serde!(
    SubaccountToken,
    "subaccount token (48 base64 chars or 72 hex digits)",
    SubaccountToken::parse,
    |t| encode_base64(&t.0)
);
string_serde!(
    Base64Bytes,
    "base64 data",
    |s| decode_base64(s).map(Base64Bytes),
    |b| encode_base64(&b.0)
);

impl Serialize for NamespaceOrAll {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            NamespaceOrAll::Ns(ns) => s.serialize_i16(*ns),
            NamespaceOrAll::All => s.serialize_str("all"),
        }
    }
}

impl<'de> Deserialize<'de> for NamespaceOrAll {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NamespaceOrAll;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 16-bit integer namespace or \"all\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NamespaceOrAll, E> {
                i16::try_from(v)
                    .map(NamespaceOrAll::Ns)
                    .map_err(|_| E::custom("namespace out of range"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NamespaceOrAll, E> {
                i16::try_from(v)
                    .map(NamespaceOrAll::Ns)
                    .map_err(|_| E::custom("namespace out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NamespaceOrAll, E> {
                if v == "all" {
                    Ok(NamespaceOrAll::All)
                } else {
                    Err(E::custom("expected an integer namespace or \"all\""))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl<T: Serialize> Serialize for OneOrMany<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either<T> {
            Many(Vec<T>),
            One(T),
        }
        match Either::<T>::deserialize(d) {
            Ok(Either::Many(v)) => Ok(OneOrMany(v)),
            Ok(Either::One(x)) => Ok(OneOrMany(vec![x])),
            Err(_) => Err(de::Error::custom("expected a value or a list of values")),
        }
    }
}

/// serde helpers for millisecond timestamps and legacy string-typed numbers.
pub mod num {
    use super::*;

    struct U64OrString {
        allow_string: bool,
    }

    impl Visitor<'_> for U64OrString {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if self.allow_string {
                f.write_str("a non-negative integer or a decimal string")
            } else {
                f.write_str("a non-negative integer")
            }
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("expected a non-negative integer"))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            if self.allow_string && !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                v.parse().map_err(|_| E::custom("number out of range"))
            } else {
                Err(E::invalid_type(de::Unexpected::Str(v), &self))
            }
        }
    }

    fn check_ts<E: de::Error>(v: u64) -> Result<u64, E> {
        if v < MIN_TIMESTAMP_MS {
            Err(E::custom("timestamp must be in milliseconds"))
        } else {
            Ok(v)
        }
    }

    /// A millisecond timestamp (integer only).
    pub fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        check_ts(d.deserialize_any(U64OrString {
            allow_string: false,
        })?)
    }

    /// An optional millisecond timestamp (integer only); `null` is absent.
    pub fn opt_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<serde_json::Value>::deserialize(d)?
            .map(|v| timestamp(v).map_err(de::Error::custom))
            .transpose()
    }

    /// A millisecond timestamp given as an integer or (legacy) a decimal string.
    pub fn timestamp_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        check_ts(d.deserialize_any(U64OrString { allow_string: true })?)
    }

    /// An optional integer that may be a (legacy) decimal string; `null` is absent.
    pub fn opt_u64_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<serde_json::Value>::deserialize(d)?
            .map(|v| {
                v.deserialize_any(U64OrString { allow_string: true })
                    .map_err(de::Error::custom)
            })
            .transpose()
    }

    /// A list of millisecond timestamps, or a single one.
    pub fn timestamps<'de, D: Deserializer<'de>>(d: D) -> Result<OneOrMany<u64>, D::Error> {
        let v = OneOrMany::<u64>::deserialize(d)?;
        for t in &v.0 {
            check_ts::<D::Error>(*t)?;
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_forms() {
        assert_eq!(decode_base64("YWJj").as_deref(), Some(&b"abc"[..]));
        assert_eq!(decode_base64("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(decode_base64("YWI").as_deref(), Some(&b"ab"[..]));
        assert_eq!(decode_base64("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_base64("YQ").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_base64("YQ=").as_deref(), None);
        assert_eq!(decode_base64("Y"), None);
        assert_eq!(decode_base64("!!!!"), None);
    }

    #[test]
    fn namespace_or_all() {
        let v: NamespaceOrAll = serde_json::from_str("\"all\"").expect("all");
        assert_eq!(v, NamespaceOrAll::All);
        let v: NamespaceOrAll = serde_json::from_str("-10").expect("int");
        assert_eq!(v, NamespaceOrAll::Ns(-10));
        assert!(serde_json::from_str::<NamespaceOrAll>("40000").is_err());
        assert!(serde_json::from_str::<NamespaceOrAll>("\"x\"").is_err());
        assert!(serde_json::from_str::<NamespaceOrAll>("1.5").is_err());
        assert_eq!(NamespaceOrAll::Ns(0).sig_str(), "");
        assert_eq!(NamespaceOrAll::All.sig_str(), "all");
    }

    #[test]
    fn one_or_many() {
        let v: OneOrMany<String> = serde_json::from_str("\"a\"").expect("one");
        assert_eq!(v.0, vec!["a".to_owned()]);
        let v: OneOrMany<String> = serde_json::from_str("[\"a\",\"b\"]").expect("many");
        assert_eq!(v.0.len(), 2);
        assert!(serde_json::from_str::<OneOrMany<String>>("[1]").is_err());
    }

    #[test]
    fn subaccount_token_forms() {
        let bytes = [7u8; 36];
        let b64 = encode_base64(&bytes);
        assert_eq!(b64.len(), 48);
        assert_eq!(SubaccountToken::parse(&b64), Some(SubaccountToken(bytes)));
        assert_eq!(
            SubaccountToken::parse(&hex::encode(bytes)),
            Some(SubaccountToken(bytes))
        );
        assert_eq!(SubaccountToken::parse("abcd"), None);
    }
}
