//! The recovery password: Electrum-style mnemonic words over the 1626-word English list.
//!
//! Encoding, per 4-byte group read as a little-endian `x` (n = 1626):
//! `w1 = x mod n`, `w2 = (x / n + w1) mod n`, `w3 = (x / n / n + w2) mod n`.
//! Decoding inverts it: `x = w1 + n·((n − w1 + w2) mod n) + n²·((n − w2 + w3) mod n)`, and a group
//! whose `x` exceeds 2³² − 1 is refused.
//!
//! The checksum word is `words[crc32(first 3 letters of every word) mod word_count]`: a repeat of
//! one of the data words. Words are matched by their first three letters, case-insensitively, so
//! `ama` and `amazing` both stand for `amaze`.
//!
//! An account's recovery password is 13 words: 16 seed bytes (12 words) plus the checksum word;
//! the account's Ed25519 seed is then `seed16 || 00×16`. The same code encodes any multiple of 4
//! bytes (32 bytes ⇄ 24 + 1 words).
//!
//! Recovery passwords are secrets: results come back in [`Zeroizing`] buffers and the word
//! indices in between are wiped.

use std::sync::OnceLock;

use zeroize::{Zeroize, Zeroizing};

use crate::err::MnemonicError;

/// The English list, one word per line, in the order Session clients use.
const ENGLISH: &str = include_str!("mnemonic/english.txt");

/// Number of words in the list.
pub const WORD_LIST_LEN: usize = 1626;
/// Letters of a word that identify it.
pub const PREFIX_LEN: usize = 3;
/// Words in an account recovery password.
pub const RECOVERY_PASSWORD_WORDS: usize = 13;

const N: u64 = WORD_LIST_LEN as u64;

/// The 1626 English words, in list order (which is also alphabetical).
pub fn english_words() -> &'static [&'static str] {
    static WORDS: OnceLock<Vec<&'static str>> = OnceLock::new();
    WORDS.get_or_init(|| {
        let words: Vec<&'static str> = ENGLISH.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            words.len(),
            WORD_LIST_LEN,
            "the bundled English list has 1626 words"
        );
        words
    })
}

/// The list index of the word whose first three letters match `word`'s (case-insensitive).
fn lookup(word: &str) -> Option<u16> {
    let bytes = word.as_bytes();
    if bytes.len() < PREFIX_LEN {
        return None;
    }
    let mut prefix = [0u8; PREFIX_LEN];
    prefix.copy_from_slice(&bytes[..PREFIX_LEN]);
    prefix.make_ascii_lowercase();
    // The list is sorted and its 3-letter prefixes are unique, so a binary search on the prefix
    // finds the one word.
    let found = english_words()
        .binary_search_by(|w| w.as_bytes()[..PREFIX_LEN].cmp(&prefix[..]))
        .ok();
    prefix.zeroize();
    found.map(|i| u16::try_from(i).expect("the list has 1626 words"))
}

/// The index (into `indices`) of the word the checksum repeats.
fn checksum_index(indices: &[u16]) -> usize {
    let words = english_words();
    let mut prefixes = Zeroizing::new(Vec::with_capacity(indices.len() * PREFIX_LEN));
    for &i in indices {
        prefixes.extend_from_slice(&words[usize::from(i)].as_bytes()[..PREFIX_LEN]);
    }
    let crc = crc32fast::hash(&prefixes);
    usize::try_from(crc).expect("usize holds a u32") % indices.len()
}

/// Encodes `bytes` (a non-zero multiple of 4 long) as words, with the checksum word if
/// `with_checksum`.
pub fn encode(bytes: &[u8], with_checksum: bool) -> Result<Zeroizing<String>, MnemonicError> {
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return Err(MnemonicError::WrongByteLength { len: bytes.len() });
    }
    let words = english_words();
    let mut indices: Zeroizing<Vec<u16>> =
        Zeroizing::new(Vec::with_capacity(bytes.len() / 4 * 3 + 1));
    for chunk in bytes.chunks_exact(4) {
        let mut x = u64::from(u32::from_le_bytes(
            chunk.try_into().expect("chunks_exact(4) gives 4 bytes"),
        ));
        let w1 = x % N;
        let w2 = (x / N + w1) % N;
        let w3 = (x / N / N + w2) % N;
        x.zeroize();
        for w in [w1, w2, w3] {
            indices.push(u16::try_from(w).expect("an index mod 1626 fits u16"));
        }
    }
    if with_checksum {
        let c = checksum_index(&indices);
        let repeat = indices[c];
        indices.push(repeat);
    }
    let mut out = Zeroizing::new(String::with_capacity(indices.len() * 9));
    for (n, &i) in indices.iter().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(words[usize::from(i)]);
    }
    Ok(out)
}

/// Decodes a phrase of words separated by whitespace. With `with_checksum`, the last word must be
/// the checksum word and the count must be 3k + 1; without, the count must be 3k.
pub fn decode(phrase: &str, with_checksum: bool) -> Result<Zeroizing<Vec<u8>>, MnemonicError> {
    let count = phrase.split_whitespace().count();
    if count == 0 {
        return Err(MnemonicError::Empty);
    }
    let ok = if with_checksum {
        count >= 4 && (count - 1) % 3 == 0
    } else {
        count % 3 == 0
    };
    if !ok {
        return Err(MnemonicError::WrongWordCount {
            got: count,
            expected: if with_checksum {
                "3k + 1 (including the checksum word)"
            } else {
                "3k"
            },
        });
    }
    decode_words(phrase, with_checksum)
}

/// Decodes an account's 13-word recovery password into its 16-byte seed.
pub fn decode_recovery_password(phrase: &str) -> Result<Zeroizing<[u8; 16]>, MnemonicError> {
    let count = phrase.split_whitespace().count();
    if count == 0 {
        return Err(MnemonicError::Empty);
    }
    if count != RECOVERY_PASSWORD_WORDS {
        return Err(MnemonicError::WrongWordCount {
            got: count,
            expected: "13",
        });
    }
    let bytes = decode_words(phrase, true)?;
    let mut seed = Zeroizing::new([0u8; 16]);
    seed.copy_from_slice(&bytes);
    Ok(seed)
}

/// Encodes a 16-byte seed as its 13-word recovery password.
pub fn encode_recovery_password(seed16: &[u8; 16]) -> Zeroizing<String> {
    encode(seed16, true).expect("16 bytes is a non-zero multiple of 4")
}

/// Decodes once the count is known to be right.
fn decode_words(phrase: &str, with_checksum: bool) -> Result<Zeroizing<Vec<u8>>, MnemonicError> {
    let mut indices: Zeroizing<Vec<u16>> = Zeroizing::new(Vec::new());
    for (n, word) in phrase.split_whitespace().enumerate() {
        let i = lookup(word).ok_or_else(|| MnemonicError::UnknownWord {
            word: word.to_owned(),
            position: n + 1,
        })?;
        indices.push(i);
    }
    if with_checksum {
        let checksum = indices
            .pop()
            .expect("the count was checked to be at least 4");
        if indices[checksum_index(&indices)] != checksum {
            return Err(MnemonicError::ChecksumMismatch {
                position: indices.len() + 1,
            });
        }
    }
    let mut out = Zeroizing::new(Vec::with_capacity(indices.len() / 3 * 4));
    for (t, triple) in indices.chunks_exact(3).enumerate() {
        let (w1, w2, w3) = (
            u64::from(triple[0]),
            u64::from(triple[1]),
            u64::from(triple[2]),
        );
        let mut x = w1 + N * ((N - w1 + w2) % N) + N * N * ((N - w2 + w3) % N);
        let value = u32::try_from(x).map_err(|_| MnemonicError::OverflowingTriplet {
            position: t * 3 + 1,
        });
        x.zeroize();
        let mut value = value?;
        out.extend_from_slice(&value.to_le_bytes());
        value.zeroize();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    const VECTORS: &str = include_str!("../tests/data/mnemonic.json");

    #[test]
    fn list_is_sorted_with_unique_prefixes() {
        let words = english_words();
        assert_eq!(words.len(), 1626);
        assert_eq!(words[0], "abbey");
        assert_eq!(words[1625], "zoom");
        for pair in words.windows(2) {
            assert!(
                pair[0].as_bytes()[..3] < pair[1].as_bytes()[..3],
                "{pair:?}"
            );
        }
    }

    #[test]
    fn vectors() {
        let doc: Value = serde_json::from_str(VECTORS).unwrap();
        let vectors = doc["vectors"].as_array().unwrap();
        assert_eq!(vectors.len(), 5);
        for v in vectors {
            let bytes = hex::decode(v["bytes_hex"].as_str().unwrap()).unwrap();
            let checksum = v["with_checksum"].as_bool().unwrap();
            let words = v["words"].as_str().unwrap();
            assert_eq!(encode(&bytes, checksum).unwrap().as_str(), words);
            assert_eq!(decode(words, checksum).unwrap().as_slice(), &bytes[..]);
            if bytes.len() == 16 {
                assert_eq!(
                    decode_recovery_password(words).unwrap().as_slice(),
                    &bytes[..]
                );
            }
        }
        for v in doc["decode_must_accept"].as_array().unwrap() {
            let bytes = hex::decode(v["bytes_hex"].as_str().unwrap()).unwrap();
            let words = v["words"].as_str().unwrap();
            assert_eq!(decode(words, true).unwrap().as_slice(), &bytes[..]);
            let upper = words.to_uppercase();
            assert_eq!(decode(&upper, true).unwrap().as_slice(), &bytes[..]);
        }
        let rejects = doc["decode_must_reject"].as_array().unwrap();
        assert_eq!(rejects.len(), 4);
        for v in rejects {
            let words = v["words"].as_str().unwrap();
            let with_checksum = words.split_whitespace().count() % 3 == 1;
            assert!(decode(words, with_checksum).is_err(), "{words}");
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let good =
            "amaze buffet cake entrance symptoms tiger lamb maze nestle python dusted faxed faxed";
        assert_eq!(decode_recovery_password(""), Err(MnemonicError::Empty));
        assert_eq!(
            decode_recovery_password(" \n\t "),
            Err(MnemonicError::Empty)
        );
        assert_eq!(
            decode_recovery_password("amaze buffet cake"),
            Err(MnemonicError::WrongWordCount {
                got: 3,
                expected: "13"
            })
        );
        let unknown = good.replacen("cake", "xyzzy", 1);
        let err = decode_recovery_password(&unknown).unwrap_err();
        assert_eq!(
            err,
            MnemonicError::UnknownWord {
                word: "xyzzy".into(),
                position: 3
            }
        );
        assert_eq!(err.to_string(), "unknown word \"xyzzy\" (word 3)");
        // Two letters are not enough to name a word.
        assert!(matches!(
            decode_recovery_password(&good.replacen("amaze", "am", 1)),
            Err(MnemonicError::UnknownWord { position: 1, .. })
        ));
        let bad_sum = good.rsplit_once(' ').unwrap().0.to_owned() + " amaze";
        assert_eq!(
            decode_recovery_password(&bad_sum),
            Err(MnemonicError::ChecksumMismatch { position: 13 })
        );
        assert_eq!(
            decode("abbey abbey zoom", false),
            Err(MnemonicError::OverflowingTriplet { position: 1 })
        );
        assert!(decode("abbey abbey", false).is_err());
        assert!(decode("abbey abbey abbey", true).is_err());
        assert_eq!(
            encode(&[1, 2, 3], true),
            Err(MnemonicError::WrongByteLength { len: 3 })
        );
        assert_eq!(
            encode(&[], false),
            Err(MnemonicError::WrongByteLength { len: 0 })
        );
        // Extra whitespace of any kind is fine.
        let spaced = format!("  {}\n", good.replace(' ', " \t\n "));
        assert!(decode_recovery_password(&spaced).is_ok());
    }

    proptest! {
        #[test]
        fn seed16_round_trip(seed in any::<[u8; 16]>()) {
            let phrase = encode_recovery_password(&seed);
            prop_assert_eq!(phrase.split(' ').count(), 13);
            prop_assert_eq!(*decode_recovery_password(&phrase).unwrap(), seed);
        }

        #[test]
        fn any_length_round_trip(bytes in prop::collection::vec(any::<u8>(), 1..16).prop_map(|v| v.repeat(4)), checksum in any::<bool>()) {
            let phrase = encode(&bytes, checksum).unwrap();
            let back = decode(&phrase, checksum).unwrap();
            prop_assert_eq!(back.as_slice(), &bytes[..]);
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
            let _ = decode(&s, true);
            let _ = decode(&s, false);
            let _ = decode_recovery_password(&s);
        }

        #[test]
        fn arbitrary_words_never_panic(idx in prop::collection::vec(0usize..1626, 0..30), checksum in any::<bool>()) {
            let words = english_words();
            let phrase: Vec<&str> = idx.iter().map(|&i| words[i]).collect();
            let phrase = phrase.join(" ");
            let _ = decode(&phrase, checksum);
            let _ = decode_recovery_password(&phrase);
        }
    }
}
