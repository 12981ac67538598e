//! The 160-byte message padding of one-to-one and community messages, and its tolerant removal.
//!
//! Layout of [`pad160`]: `content || 0x80 || 00…`, to the next multiple of 160 bytes that leaves
//! room for the `0x80` (so 159 content bytes give 320). Older desktop clients padded to
//! `160k − 1` bytes instead; [`unpad`] accepts both, and unpadded data too.

/// Block size of the padding.
pub const BLOCK: usize = 160;
/// The byte that ends the content.
pub const TERMINATOR: u8 = 0x80;

/// Length of `pad160` output for `len` content bytes.
pub fn padded_len(len: usize) -> usize {
    ((len + 1) / BLOCK + 1) * BLOCK
}

/// Pads `content` to a multiple of 160 bytes: `content || 0x80 || 00…`.
pub fn pad160(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(padded_len(content.len()));
    pad160_into(content, &mut out);
    out
}

/// Appends the padded form of `content` to `out`.
pub fn pad160_into(content: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(content);
    out.push(TERMINATOR);
    out.resize(start + padded_len(content.len()), 0);
}

/// Removes the padding: walks back over `0x00` bytes; if it then finds `0x80` it drops it and
/// stops; if it finds any other byte the data is taken as unpadded and returned whole.
///
/// This is desktop's rule (and the spec's). libsession differs only for unpadded data that ends
/// in zero bytes, which it trims; keeping them is the safer reading, since a protobuf may end in
/// `0x00`. It accepts both padding variants and never fails.
pub fn unpad(padded: &[u8]) -> &[u8] {
    match padded.iter().rposition(|&b| b != 0) {
        Some(i) if padded[i] == TERMINATOR => &padded[..i],
        Some(_) => padded,
        // All zeros (or empty): nothing but padding.
        None => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lengths() {
        assert_eq!(pad160(b"").len(), 160);
        assert_eq!(pad160(&[1; 158]).len(), 160);
        assert_eq!(pad160(&[1; 159]).len(), 320);
        assert_eq!(pad160(&[1; 318]).len(), 320);
        assert_eq!(pad160(&[1; 319]).len(), 480);
        let p = pad160(b"hello");
        assert_eq!(&p[..6], b"hello\x80");
        assert!(p[6..].iter().all(|&b| b == 0));
    }

    #[test]
    fn unpad_variants() {
        // Current padding.
        assert_eq!(unpad(&pad160(b"hi")), b"hi");
        // Old desktop padding to 160k - 1.
        let mut old = b"hello".to_vec();
        old.push(0x80);
        old.resize(159, 0);
        assert_eq!(unpad(&old), b"hello");
        // Unpadded data ending in a non-zero byte is kept whole.
        assert_eq!(unpad(b"abc"), b"abc");
        // Trailing zeros without the 0x80: the data is taken as unpadded.
        assert_eq!(unpad(b"ab\0\0"), b"ab\0\0");
        assert_eq!(unpad(b""), b"");
        assert_eq!(unpad(&[0, 0, 0]), b"");
        assert_eq!(unpad(&[0x80]), b"");
        // Only the last 0x80 goes.
        assert_eq!(unpad(b"a\x80\x80\0"), b"a\x80");
    }

    proptest! {
        #[test]
        fn round_trip(content in prop::collection::vec(any::<u8>(), 0..700)) {
            let padded = pad160(&content);
            prop_assert_eq!(padded.len() % BLOCK, 0);
            prop_assert!(padded.len() > content.len());
            prop_assert_eq!(unpad(&padded), &content[..]);
        }

        #[test]
        fn unpad_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let out = unpad(&bytes);
            prop_assert!(bytes.starts_with(out));
        }
    }
}
