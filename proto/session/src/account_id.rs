//! Account IDs: 33 bytes, a one-byte prefix saying what the key is, then a 32-byte key.
//!
//! Byte layout: `prefix(1) || key(32)`, shown as 66 lowercase hex characters.
//!
//! | prefix | [`Prefix`] | the 32 bytes are |
//! |---|---|---|
//! | `05` | [`Prefix::Standard`] | an account's X25519 public key (DMs, contacts) |
//! | `03` | [`Prefix::Group`] | a group's Ed25519 public key |
//! | `15` | [`Prefix::Blinded15`] | a community "blind15" Ed25519 key |
//! | `25` | [`Prefix::Blinded25`] | a community "blind25" Ed25519 key |
//! | `00` | [`Prefix::Unblinded`] | an unblinded Ed25519 key (SOGS auth) |
//!
//! Parsing user input ([`FromStr`], [`AccountId::from_bytes`]) accepts only those prefixes. Bytes
//! that come from the network may carry any prefix; [`AccountId::from_raw`] holds them as they
//! are, and [`AccountId::prefix`] then returns `None`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::err::AccountIdError;

/// What the first byte of an [`AccountId`] says its key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Prefix {
    /// `05`: a standard account; the key is X25519.
    Standard = 0x05,
    /// `03`: a group (v2); the key is the group's Ed25519 public key.
    Group = 0x03,
    /// `15`: a community blind15 ID.
    Blinded15 = 0x15,
    /// `25`: a community blind25 ID.
    Blinded25 = 0x25,
    /// `00`: an unblinded Ed25519 key, as SOGS servers see it.
    Unblinded = 0x00,
}

impl Prefix {
    /// The prefix a byte stands for, if it is one we know.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0x05 => Some(Self::Standard),
            0x03 => Some(Self::Group),
            0x15 => Some(Self::Blinded15),
            0x25 => Some(Self::Blinded25),
            0x00 => Some(Self::Unblinded),
            _ => None,
        }
    }

    /// The byte on the wire.
    pub fn byte(self) -> u8 {
        self as u8
    }
}

/// A 33-byte Account ID: `prefix || key`. See the module docs for the layout.
///
/// `Display` is the full lowercase hex; `Debug` and [`AccountId::redacted`] show only the first
/// and last bytes (`05d2ad…3a72`), which is what logs should use.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId([u8; AccountId::LEN]);

impl AccountId {
    /// Length in bytes.
    pub const LEN: usize = 33;
    /// Length of the hex form.
    pub const HEX_LEN: usize = 66;

    /// An ID from a known prefix and a 32-byte key.
    pub fn new(prefix: Prefix, key: [u8; 32]) -> Self {
        let mut bytes = [0u8; Self::LEN];
        bytes[0] = prefix.byte();
        bytes[1..].copy_from_slice(&key);
        Self(bytes)
    }

    /// A standard (`05`) Account ID for an X25519 public key.
    pub fn standard(x25519_pk: [u8; 32]) -> Self {
        Self::new(Prefix::Standard, x25519_pk)
    }

    /// Parses 33 bytes whose prefix must be one of [`Prefix`].
    pub fn from_bytes(bytes: [u8; Self::LEN]) -> Result<Self, AccountIdError> {
        match Prefix::from_byte(bytes[0]) {
            Some(_) => Ok(Self(bytes)),
            None => Err(AccountIdError::UnknownPrefix { prefix: bytes[0] }),
        }
    }

    /// Parses a byte slice of exactly 33 bytes with a known prefix.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, AccountIdError> {
        let arr: [u8; Self::LEN] = bytes
            .try_into()
            .map_err(|_| AccountIdError::WrongByteLength { len: bytes.len() })?;
        Self::from_bytes(arr)
    }

    /// Holds 33 bytes as they are, whatever the prefix (for IDs that come from the network).
    pub fn from_raw(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    /// Parses 66 hex characters, accepting any prefix byte (for IDs from the network).
    pub fn parse_raw(s: &str) -> Result<Self, AccountIdError> {
        if s.len() != Self::HEX_LEN {
            return Err(AccountIdError::WrongHexLength { len: s.len() });
        }
        let mut bytes = [0u8; Self::LEN];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| AccountIdError::BadHex)?;
        Ok(Self(bytes))
    }

    /// The known prefix, or `None` for an ID held with [`AccountId::from_raw`].
    pub fn prefix(&self) -> Option<Prefix> {
        Prefix::from_byte(self.0[0])
    }

    /// The first byte as it is.
    pub fn prefix_byte(&self) -> u8 {
        self.0[0]
    }

    /// The 32 bytes after the prefix.
    pub fn key(&self) -> &[u8; 32] {
        self.0[1..]
            .try_into()
            .expect("an Account ID is 33 bytes, so the key is 32")
    }

    /// All 33 bytes.
    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// A short form for logs: the prefix and two key bytes, an ellipsis, the last two bytes.
    pub fn redacted(&self) -> Redacted<'_> {
        Redacted(self)
    }
}

/// The short form of an [`AccountId`] for logs (`05d2ad…3a72`). See [`AccountId::redacted`].
#[derive(Clone, Copy)]
pub struct Redacted<'a>(&'a AccountId);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0 .0;
        write!(
            f,
            "{:02x}{:02x}{:02x}…{:02x}{:02x}",
            b[0],
            b[1],
            b[2],
            b[AccountId::LEN - 2],
            b[AccountId::LEN - 1]
        )
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; Self::HEX_LEN];
        hex::encode_to_slice(self.0, &mut buf).expect("66 hex chars for 33 bytes");
        f.write_str(std::str::from_utf8(&buf).expect("hex is ASCII"))
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({})", self.redacted())
    }
}

impl FromStr for AccountId {
    type Err = AccountIdError;

    /// Parses 66 hex characters (either case) with a known prefix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id = Self::parse_raw(s)?;
        Self::from_bytes(id.0)
    }
}

impl TryFrom<&[u8]> for AccountId {
    type Error = AccountIdError;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        Self::from_slice(bytes)
    }
}

impl Serialize for AccountId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AccountId {
    /// Reads the hex form with [`FromStr`], so only known prefixes are accepted.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = AccountId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an Account ID as 66 hex characters")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AccountId, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::err::{ErrorKind, HasKind};
    use proptest::prelude::*;

    const ID: &str = "05d2ad010eeb72d72e561d9de7bd7b6989af77dcabffa03a5111a6c859ae5c3a72";

    #[test]
    fn parses_and_displays() {
        let id: AccountId = ID.parse().unwrap();
        assert_eq!(id.prefix(), Some(Prefix::Standard));
        assert_eq!(id.to_string(), ID);
        assert_eq!(id.key()[0], 0xd2);
        assert_eq!(format!("{}", id.redacted()), "05d2ad…3a72");
        assert_eq!(format!("{id:?}"), "AccountId(05d2ad…3a72)");
        // Upper case is accepted and shown back in lower case.
        let upper: AccountId = ID.to_uppercase().parse().unwrap();
        assert_eq!(upper, id);
    }

    #[test]
    fn every_known_prefix() {
        for (byte, prefix) in [
            (0x05, Prefix::Standard),
            (0x03, Prefix::Group),
            (0x15, Prefix::Blinded15),
            (0x25, Prefix::Blinded25),
            (0x00, Prefix::Unblinded),
        ] {
            let s = format!("{byte:02x}{}", &ID[2..]);
            let id: AccountId = s.parse().unwrap();
            assert_eq!(id.prefix(), Some(prefix));
            assert_eq!(id.prefix_byte(), byte);
        }
    }

    #[test]
    fn typed_errors() {
        assert_eq!(
            "05d2".parse::<AccountId>(),
            Err(AccountIdError::WrongHexLength { len: 4 })
        );
        let bad_hex = format!("05{}", "zz".repeat(32));
        assert_eq!(bad_hex.parse::<AccountId>(), Err(AccountIdError::BadHex));
        let bad_prefix = format!("07{}", &ID[2..]);
        let err = bad_prefix.parse::<AccountId>().unwrap_err();
        assert_eq!(err, AccountIdError::UnknownPrefix { prefix: 0x07 });
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        // The network form keeps it.
        let raw = AccountId::parse_raw(&bad_prefix).unwrap();
        assert_eq!(raw.prefix(), None);
        assert_eq!(raw.prefix_byte(), 0x07);
        assert_eq!(
            AccountId::from_slice(&[5u8; 32]),
            Err(AccountIdError::WrongByteLength { len: 32 })
        );
        // A multi-byte character must not split a char boundary or panic.
        let s = format!("é{}", &ID[2..]);
        assert!(s.parse::<AccountId>().is_err());
    }

    #[test]
    fn serde_as_hex_string() {
        let id: AccountId = ID.parse().unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{ID}\""));
        let back: AccountId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<AccountId>("\"05\"").is_err());
        assert!(serde_json::from_str::<AccountId>("5").is_err());
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(prefix in prop::sample::select(vec![0x05u8, 0x03, 0x15, 0x25, 0x00]), key in any::<[u8; 32]>()) {
            let id = AccountId::new(Prefix::from_byte(prefix).unwrap(), key);
            let back: AccountId = id.to_string().parse().unwrap();
            prop_assert_eq!(back, id);
            prop_assert_eq!(AccountId::from_slice(id.as_bytes()).unwrap(), id);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,80}") {
            let _ = s.parse::<AccountId>();
            let _ = AccountId::parse_raw(&s);
        }

        #[test]
        fn arbitrary_hex_never_panics(s in "[0-9a-fA-F]{60,70}") {
            if let Ok(id) = s.parse::<AccountId>() {
                prop_assert_eq!(id.to_string(), s.to_lowercase());
            }
        }
    }
}
