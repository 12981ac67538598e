//! libsodium's `crypto_secretstream_xchacha20poly1305`, the AEAD stream under libsession's
//! attachment format, with the header supplied by the caller (libsession derives it from the
//! data instead of drawing it at random).
//!
//! Per message: the Poly1305 key is ChaCha20-IETF block 0 under the state's key and nonce; the
//! tag byte is the first byte of block 1 XOR the tag; the message is XORed from block 2 on. The
//! MAC covers `block1(64) ‖ c ‖ 0x00×(len(c) mod 16) ‖ u64_le(0) ‖ u64_le(64 + len(c))` (no
//! additional data is used here; the odd pad length is libsodium's and is kept exactly). Each
//! ciphertext message is `enc_tag(1) ‖ c ‖ mac(16)`. After every message the inner nonce is
//! XORed with the MAC's first 8 bytes and the 32-bit counter steps; a `REKEY` tag or a counter
//! wrap rekeys.

use chacha20::cipher::consts::U10;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::ChaCha20;
use poly1305::universal_hash::{KeyInit, UniversalHash};
use poly1305::Poly1305;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Header length: 16 bytes for HChaCha20, then the 8-byte inner nonce.
pub const HEADER_LEN: usize = 24;
/// Key length.
pub const KEY_LEN: usize = 32;
/// Bytes one message adds: the encrypted tag byte and the 16-byte MAC.
pub const ABYTES: usize = 17;
/// Tag of an ordinary message.
pub const TAG_MESSAGE: u8 = 0;
/// Tag of the last message of a stream.
pub const TAG_FINAL: u8 = 3;
/// Tag bit asking for a rekey after the message.
pub const TAG_REKEY: u8 = 2;

/// One direction of a secret stream: the derived key and `counter(4) ‖ inonce(8)`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct State {
    k: [u8; 32],
    nonce: [u8; 12],
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("secretstream::State(..)")
    }
}

/// A message whose MAC did not verify (wrong key, altered or reordered data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullError;

impl State {
    /// The state for `key` and `header`; the same for pushing (`init_push` with this header)
    /// and pulling (`init_pull`).
    pub fn new(key: &[u8; KEY_LEN], header: &[u8; HEADER_LEN]) -> State {
        let (hin, inonce) = header.split_at(16);
        let k = chacha20::hchacha::<U10>(key.into(), hin.into());
        let mut nonce = [0u8; 12];
        nonce[0] = 1;
        nonce[4..].copy_from_slice(inonce);
        State { k: k.into(), nonce }
    }

    fn cipher(&self) -> ChaCha20 {
        ChaCha20::new(&self.k.into(), &self.nonce.into())
    }

    /// Encrypts `msg` with `tag`, appending `enc_tag ‖ c ‖ mac` (`msg.len() + 17` bytes).
    pub fn push(&mut self, msg: &[u8], tag: u8, out: &mut Vec<u8>) {
        let mut cipher = self.cipher();
        let mac = mac_start(&mut cipher);
        let mut block = [0u8; 64];
        block[0] = tag;
        cipher.apply_keystream(&mut block);
        let start = out.len();
        out.push(block[0]);
        out.extend_from_slice(msg);
        cipher.apply_keystream(&mut out[start + 1..]);
        let tag_bytes = mac_finish(mac, &block, &out[start + 1..]);
        out.extend_from_slice(&tag_bytes);
        self.advance(&tag_bytes, tag);
        block.zeroize();
    }

    /// Verifies and decrypts one message `enc_tag ‖ c ‖ mac`, appending the plaintext to `out`
    /// and returning its tag. On error nothing is appended and the state is unchanged.
    pub fn pull(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<u8, PullError> {
        if input.len() < ABYTES {
            return Err(PullError);
        }
        let (c, stored) = input[1..].split_at(input.len() - ABYTES);
        let mut cipher = self.cipher();
        let mac = mac_start(&mut cipher);
        let mut block = [0u8; 64];
        block[0] = input[0];
        cipher.apply_keystream(&mut block);
        let tag = block[0];
        block[0] = input[0];
        let computed = mac_finish(mac, &block, c);
        block.zeroize();
        if !ct_eq(&computed, stored) {
            return Err(PullError);
        }
        let start = out.len();
        out.extend_from_slice(c);
        cipher.apply_keystream(&mut out[start..]);
        self.advance(&computed, tag);
        Ok(tag)
    }

    fn advance(&mut self, mac: &[u8; 16], tag: u8) {
        for (n, m) in self.nonce[4..].iter_mut().zip(mac) {
            *n ^= m;
        }
        let counter =
            u32::from_le_bytes([self.nonce[0], self.nonce[1], self.nonce[2], self.nonce[3]])
                .wrapping_add(1);
        self.nonce[..4].copy_from_slice(&counter.to_le_bytes());
        if tag & TAG_REKEY != 0 || counter == 0 {
            self.rekey();
        }
    }

    /// `crypto_secretstream_xchacha20poly1305_rekey`: key and inner nonce XORed with the
    /// keystream, counter reset to 1.
    fn rekey(&mut self) {
        let mut buf = [0u8; 40];
        buf[..32].copy_from_slice(&self.k);
        buf[32..].copy_from_slice(&self.nonce[4..]);
        self.cipher().apply_keystream(&mut buf);
        self.k.copy_from_slice(&buf[..32]);
        self.nonce[4..].copy_from_slice(&buf[32..]);
        self.nonce[..4].copy_from_slice(&1u32.to_le_bytes());
        buf.zeroize();
    }
}

/// Takes keystream block 0 as the Poly1305 key, leaving the cipher at block 1.
fn mac_start(cipher: &mut ChaCha20) -> Poly1305 {
    let mut block0 = [0u8; 64];
    cipher.apply_keystream(&mut block0);
    let mac = Poly1305::new((&block0[..32]).into());
    block0.zeroize();
    mac
}

/// Feeds `block ‖ c ‖ pad ‖ lengths` (no additional data, so its own pad is empty).
fn mac_finish(mut mac: Poly1305, block: &[u8; 64], c: &[u8]) -> [u8; 16] {
    // `update_padded` on whole blocks adds no padding.
    mac.update_padded(block);
    let full = c.len() - c.len() % 16;
    mac.update_padded(&c[..full]);
    // From here the input is no longer 16-aligned in general: libsodium pads `c` with
    // `len(c) mod 16` zero bytes (not up to the next multiple of 16), then the lengths.
    let rest = &c[full..];
    let mut tail = [0u8; 15 + 15 + 16];
    tail[..rest.len()].copy_from_slice(rest);
    let mut len = 2 * rest.len();
    tail[len..len + 8].copy_from_slice(&0u64.to_le_bytes());
    tail[len + 8..len + 16].copy_from_slice(&(64 + c.len() as u64).to_le_bytes());
    len += 16;
    let whole = len - len % 16;
    mac.update_padded(&tail[..whole]);
    mac.compute_unpadded(&tail[whole..len]).into()
}

fn ct_eq(a: &[u8; 16], b: &[u8]) -> bool {
    b.len() == 16 && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_pull_round_trip_with_tags_and_rekey() {
        let key = [7u8; 32];
        let header = [9u8; 24];
        let mut tx = State::new(&key, &header);
        let mut rx = State::new(&key, &header);
        let msgs: [(&[u8], u8); 4] = [
            (b"", TAG_MESSAGE),
            (b"hello", TAG_REKEY),
            (&[0x55; 100], TAG_MESSAGE),
            (b"end", TAG_FINAL),
        ];
        for (m, t) in msgs {
            let mut ct = Vec::new();
            tx.push(m, t, &mut ct);
            assert_eq!(ct.len(), m.len() + ABYTES);
            let mut pt = Vec::new();
            assert_eq!(rx.pull(&ct, &mut pt), Ok(t));
            assert_eq!(pt, m);
        }
    }

    #[test]
    fn altered_or_short_messages_fail_without_output() {
        let mut tx = State::new(&[1; 32], &[2; 24]);
        let mut ct = Vec::new();
        tx.push(b"attack at dawn", TAG_FINAL, &mut ct);
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            let mut rx = State::new(&[1; 32], &[2; 24]);
            let mut out = Vec::new();
            assert_eq!(rx.pull(&bad, &mut out), Err(PullError));
            assert!(out.is_empty());
        }
        let mut rx = State::new(&[1; 32], &[2; 24]);
        assert_eq!(rx.pull(&ct[..16], &mut Vec::new()), Err(PullError));
        let mut wrong = State::new(&[3; 32], &[2; 24]);
        assert_eq!(wrong.pull(&ct, &mut Vec::new()), Err(PullError));
    }
}
