//! Community DMs through the server's blinded inbox (spec §4).
//!
//! Wire: `0x00 ‖ XChaCha20-Poly1305-IETF(plaintext, key, nonce24, no AD) ‖ nonce24`, where
//! `plaintext = pad160(Content) ‖ sender_ed25519_pk(32)` and, for blind15 IDs `kA` (sender) and
//! `kB` (recipient), `key = BLAKE2b-256(a·kB ‖ kA ‖ kB)` — the recipient computes the same
//! point as `b·kA`. The hash order is always sender first, so reading our own outbox uses the
//! same key with the roles as they were.

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::blinding::{blind15_id_from_ed25519, prime_order_point, Blind15Keys};
use crate::account_id::{AccountId, Prefix};
use crate::err::CommunityError;
use crate::keys::ed25519_pk_to_x25519;
use crate::padding::{pad160, unpad};

/// Version byte of the only format.
pub const DM_VERSION: u8 = 0x00;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Smallest possible DM: version, tag, sender key and nonce.
pub const DM_MIN_LEN: usize = 1 + TAG_LEN + 32 + NONCE_LEN;

/// A community DM opened by its recipient (or by its sender, from the outbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedDm {
    /// The sender's real Account ID (`05…`), learnt from the key inside the DM.
    pub sender: AccountId,
    /// The sender's real Ed25519 key.
    pub sender_ed25519: [u8; 32],
    /// The Content bytes, padding removed.
    pub content: Vec<u8>,
}

fn blinded15(id: &AccountId, what: &'static str) -> Result<[u8; 32], CommunityError> {
    if id.prefix() != Some(Prefix::Blinded15) {
        return Err(CommunityError::WrongPrefix {
            expected: "15 (blinded)",
            prefix: id.prefix_byte(),
        });
    }
    prime_order_point(id.key(), what)?;
    Ok(*id.key())
}

/// `BLAKE2b-256(own_a·other ‖ sender ‖ recipient)`.
fn shared_key(
    own: &Blind15Keys,
    other: &[u8; 32],
    sender: &[u8; 32],
    recipient: &[u8; 32],
) -> Result<Zeroizing<[u8; 32]>, CommunityError> {
    let point = prime_order_point(other, "the other side's blinded key")?;
    let shared = Zeroizing::new((own.private_scalar() * point).compress().to_bytes());
    Ok(Zeroizing::new(
        Blake2b::<U32>::new()
            .chain_update(&shared[..])
            .chain_update(sender)
            .chain_update(recipient)
            .finalize()
            .into(),
    ))
}

/// Encrypts `content` (an unpadded Content protobuf) for `recipient` (`15…`) with a fixed nonce.
/// Use [`encrypt_dm`] unless reproducing a vector.
pub fn encrypt_dm_with_nonce(
    sender: &Blind15Keys,
    recipient: &AccountId,
    content: &[u8],
    nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>, CommunityError> {
    let kb = blinded15(recipient, "the recipient's blinded key")?;
    let key = shared_key(sender, &kb, sender.public(), &kb)?;
    let mut plaintext = Zeroizing::new(pad160(content));
    plaintext.extend_from_slice(sender.ed25519_public());
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    let ct = cipher
        .encrypt(XNonce::from_slice(nonce), plaintext.as_slice())
        .map_err(|_| CommunityError::DmDecrypt)?;
    let mut out = Vec::with_capacity(1 + ct.len() + NONCE_LEN);
    out.push(DM_VERSION);
    out.extend_from_slice(&ct);
    out.extend_from_slice(nonce);
    Ok(out)
}

/// Encrypts `content` for `recipient` with a random nonce.
pub fn encrypt_dm(
    rng: &mut impl CryptoRngCore,
    sender: &Blind15Keys,
    recipient: &AccountId,
    content: &[u8],
) -> Result<Vec<u8>, CommunityError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    encrypt_dm_with_nonce(sender, recipient, content, &nonce)
}

/// Opens a DM from `sender` to `recipient` (both `15…`, as the server lists them); `own` must be
/// one of the two. Checks that the Ed25519 key inside blinds to `sender`.
pub fn decrypt_dm(
    own: &Blind15Keys,
    sender: &AccountId,
    recipient: &AccountId,
    wire: &[u8],
) -> Result<OpenedDm, CommunityError> {
    let ka = blinded15(sender, "the sender's blinded key")?;
    let kb = blinded15(recipient, "the recipient's blinded key")?;
    let other = if own.id() == recipient {
        ka
    } else if own.id() == sender {
        kb
    } else {
        return Err(CommunityError::DmNotOurs);
    };
    if wire.len() < DM_MIN_LEN {
        return Err(CommunityError::DmTooShort {
            len: wire.len(),
            min: DM_MIN_LEN,
        });
    }
    if wire[0] != DM_VERSION {
        return Err(CommunityError::DmVersion(wire[0]));
    }
    let (ct, nonce) = wire[1..].split_at(wire.len() - 1 - NONCE_LEN);
    let key = shared_key(own, &other, &ka, &kb)?;
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    let plaintext = Zeroizing::new(
        cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| CommunityError::DmDecrypt)?,
    );
    let (body, ed) = plaintext.split_at(plaintext.len() - 32);
    let sender_ed25519: [u8; 32] = ed.try_into().expect("split 32 bytes from the end");
    // The key inside must be the one behind the claimed sender ID.
    if blind15_id_from_ed25519(&sender_ed25519, own.server_pk())? != *sender {
        return Err(CommunityError::DmSenderMismatch);
    }
    let x = ed25519_pk_to_x25519(&sender_ed25519).map_err(|_| CommunityError::BadPoint {
        what: "the sender's Ed25519 key",
    })?;
    Ok(OpenedDm {
        sender: AccountId::standard(x),
        sender_ed25519,
        content: unpad(body).to_vec(),
    })
}
