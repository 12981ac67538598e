//! Blinded community keys (identity-and-messages.md §5.1-5.3): blind15, blind25 recognition and
//! signing, matching a blinded ID to a known Account ID, and the version-check key.
//!
//! blind15 (what clients use):
//! - `k = reduce(BLAKE2b-512(server_pk))`, `a` = the clamped Ed25519 private scalar;
//! - `ka = k·a mod ℓ`, `kA = ka·B`; ID = `15 ‖ kA`;
//! - signatures: `r = reduce(SHA-512(H ‖ kA ‖ M))` with `H = SHA-512(seed)[32..]` (desktop,
//!   pysogs) or `SHA-512(seed ‖ ed_pk)[32..]` (libsession); `R = r·B`,
//!   `s = r + reduce(SHA-512(R ‖ kA ‖ M))·ka`. Plain Ed25519 verifies them against kA.
//! - from an Account ID `05 ‖ X`: `A⁺` = the Ed25519 point with sign bit 0 whose Montgomery form
//!   is X; the ID is `k·A⁺` or that with bit 7 of byte 31 flipped (the sign of A is unknown).
//!
//! blind25 (implemented in libsession, unused by released clients):
//! - `k = reduce(BLAKE2b-512(05 ‖ X ‖ server_pk))`, negated when ed_pk is negative, so the ID
//!   `25 ‖ k·A⁺` is unambiguous from the Account ID;
//! - signatures: `r = reduce(BLAKE2b-512_key("SessCommBlind25_sig")(seedhash ‖ A′ ‖ M))` with
//!   `seedhash = BLAKE2b-256_key("SessCommBlind25_seed")(seed)`.

use blake2::digest::consts::U32;
use blake2::digest::{FixedOutput, Mac};
use blake2::{Blake2b512, Blake2bMac, Blake2bMac512};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::Scalar;
use ed25519_dalek::{Signature, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use crate::account_id::{AccountId, Prefix};
use crate::err::CommunityError;
use crate::keys::{x25519_pk_to_ed25519, IdentityKeys};

/// `k = reduce(BLAKE2b-512(server_pk))`, the blind15 factor of a server.
pub fn blind15_factor(server_pk: &[u8; 32]) -> Scalar {
    let hash: [u8; 64] = Blake2b512::digest(server_pk).into();
    Scalar::from_bytes_mod_order_wide(&hash)
}

/// `k = reduce(BLAKE2b-512(05 ‖ x_pk ‖ server_pk))`, the blind25 factor of one account on one
/// server.
pub fn blind25_factor(x_pk: &[u8; 32], server_pk: &[u8; 32]) -> Scalar {
    let hash: [u8; 64] = Blake2b512::new()
        .chain_update([0x05])
        .chain_update(x_pk)
        .chain_update(server_pk)
        .finalize()
        .into();
    Scalar::from_bytes_mod_order_wide(&hash)
}

/// Decompresses a public key that must be a prime-order point (not small order, no torsion).
pub(crate) fn prime_order_point(
    bytes: &[u8; 32],
    what: &'static str,
) -> Result<EdwardsPoint, CommunityError> {
    CompressedEdwardsY(*bytes)
        .decompress()
        .filter(|p| !p.is_small_order() && p.is_torsion_free())
        .ok_or(CommunityError::BadPoint { what })
}

/// The clamped Ed25519 private scalar `a` of an identity, reduced mod ℓ.
fn private_scalar(keys: &IdentityKeys) -> Zeroizing<Scalar> {
    Zeroizing::new(Scalar::from_bytes_mod_order(
        keys.x25519_secret().to_bytes(),
    ))
}

/// `SHA-512(parts…)` reduced mod ℓ.
fn sha512_scalar(parts: &[&[u8]]) -> Scalar {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// `R ‖ s` with `R = r·B`, `s = r + reduce(SHA-512(R ‖ A ‖ M))·a`.
fn finish_signature(a: &Scalar, a_pub: &[u8; 32], r: &Scalar, parts: &[&[u8]]) -> [u8; 64] {
    let big_r = EdwardsPoint::mul_base(r).compress().to_bytes();
    let mut hram = Vec::with_capacity(parts.len() + 2);
    hram.push(&big_r[..]);
    hram.push(&a_pub[..]);
    hram.extend_from_slice(parts);
    let s = r + sha512_scalar(&hram) * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&big_r);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

/// Which deterministic nonce a blind15 signature uses. Both verify; the bytes differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blind15Nonce {
    /// `SHA-512(seed32)[32..]`: desktop and pysogs (what we send).
    Desktop,
    /// `SHA-512(seed32 ‖ ed_pk)[32..]`: libsession's `blind15_sign`.
    Libsession,
}

/// An identity's blind15 key pair for one community server.
///
/// Derive it once per (identity, server) and keep it: it holds the blinded scalar, the blinded
/// key, and what signing and community DMs need. `Debug` shows the redacted blinded ID.
pub struct Blind15Keys {
    server_pk: [u8; 32],
    /// `a`: the unblinded private scalar (community DMs use it).
    a: Zeroizing<Scalar>,
    /// `ka`.
    ka: Zeroizing<Scalar>,
    /// `kA`, compressed.
    ka_pub: [u8; 32],
    /// The real Ed25519 public key.
    ed_pk: [u8; 32],
    nonce_desktop: Zeroizing<[u8; 32]>,
    nonce_libsession: Zeroizing<[u8; 32]>,
    id: AccountId,
}

impl std::fmt::Debug for Blind15Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blind15Keys")
            .field("id", &self.id.redacted())
            .finish_non_exhaustive()
    }
}

impl Blind15Keys {
    /// Derives the blind15 keys of `keys` for the server with X25519 key `server_pk`.
    pub fn new(keys: &IdentityKeys, server_pk: &[u8; 32]) -> Blind15Keys {
        let k = blind15_factor(server_pk);
        let a = private_scalar(keys);
        let ka = Zeroizing::new(k * *a);
        let ka_pub = EdwardsPoint::mul_base(&ka).compress().to_bytes();
        let seed_hash: Zeroizing<[u8; 64]> = Zeroizing::new(Sha512::digest(keys.seed()).into());
        let full_hash: Zeroizing<[u8; 64]> = Zeroizing::new(
            Sha512::new()
                .chain_update(keys.seed())
                .chain_update(keys.ed25519_public())
                .finalize()
                .into(),
        );
        let mut nonce_desktop = Zeroizing::new([0u8; 32]);
        nonce_desktop.copy_from_slice(&seed_hash[32..]);
        let mut nonce_libsession = Zeroizing::new([0u8; 32]);
        nonce_libsession.copy_from_slice(&full_hash[32..]);
        Blind15Keys {
            server_pk: *server_pk,
            a,
            ka,
            ka_pub,
            ed_pk: *keys.ed25519_public(),
            nonce_desktop,
            nonce_libsession,
            id: AccountId::new(Prefix::Blinded15, ka_pub),
        }
    }

    /// The server key these keys are for.
    pub fn server_pk(&self) -> &[u8; 32] {
        &self.server_pk
    }
    /// `kA`, the blinded Ed25519 public key.
    pub fn public(&self) -> &[u8; 32] {
        &self.ka_pub
    }
    /// `15 ‖ kA`, how the server and other users see this identity.
    pub fn id(&self) -> &AccountId {
        &self.id
    }
    /// The real (unblinded) Ed25519 public key.
    pub fn ed25519_public(&self) -> &[u8; 32] {
        &self.ed_pk
    }
    /// The unblinded private scalar `a` (community DM key agreement).
    pub(crate) fn private_scalar(&self) -> &Scalar {
        &self.a
    }

    /// A blind15 signature over `message` with desktop's nonce (what clients send).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.sign_parts(Blind15Nonce::Desktop, &[message])
    }

    /// A blind15 signature over the concatenation of `parts`, with the chosen nonce rule.
    pub fn sign_parts(&self, nonce: Blind15Nonce, parts: &[&[u8]]) -> [u8; 64] {
        let prefix = match nonce {
            Blind15Nonce::Desktop => &self.nonce_desktop,
            Blind15Nonce::Libsession => &self.nonce_libsession,
        };
        let mut rparts = Vec::with_capacity(parts.len() + 2);
        rparts.push(&prefix[..]);
        rparts.push(&self.ka_pub[..]);
        rparts.extend_from_slice(parts);
        let r = Zeroizing::new(sha512_scalar(&rparts));
        finish_signature(&self.ka, &self.ka_pub, &r, parts)
    }
}

/// An identity's blind25 key pair for one server (libsession `blind25_key_pair`).
pub struct Blind25Keys {
    ka: Zeroizing<Scalar>,
    ka_pub: [u8; 32],
    seedhash: Zeroizing<[u8; 32]>,
    id: AccountId,
}

impl std::fmt::Debug for Blind25Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blind25Keys")
            .field("id", &self.id.redacted())
            .finish_non_exhaustive()
    }
}

/// BLAKE2b keyed with `key`, `N` bytes out, over `parts`.
fn blake2b_keyed_32(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Blake2bMac<U32> as Mac>::new_from_slice(key)
        .expect("the fixed keys are shorter than 64 bytes");
    for p in parts {
        Mac::update(&mut mac, p);
    }
    mac.finalize_fixed().into()
}

fn blake2b_keyed_64(key: &[u8], parts: &[&[u8]]) -> [u8; 64] {
    let mut mac = <Blake2bMac512 as Mac>::new_from_slice(key)
        .expect("the fixed keys are shorter than 64 bytes");
    for p in parts {
        Mac::update(&mut mac, p);
    }
    mac.finalize_fixed().into()
}

impl Blind25Keys {
    /// Derives the blind25 keys of `keys` for the server with X25519 key `server_pk`.
    pub fn new(keys: &IdentityKeys, server_pk: &[u8; 32]) -> Blind25Keys {
        let mut k = blind25_factor(keys.x25519_public(), server_pk);
        if keys.ed25519_public()[31] & 0x80 != 0 {
            k = -k;
        }
        let ka = Zeroizing::new(k * *private_scalar(keys));
        let ka_pub = EdwardsPoint::mul_base(&ka).compress().to_bytes();
        let seedhash = Zeroizing::new(blake2b_keyed_32(b"SessCommBlind25_seed", &[keys.seed()]));
        Blind25Keys {
            ka,
            ka_pub,
            seedhash,
            id: AccountId::new(Prefix::Blinded25, ka_pub),
        }
    }
    /// The blinded Ed25519 public key `A′`.
    pub fn public(&self) -> &[u8; 32] {
        &self.ka_pub
    }
    /// `25 ‖ A′`.
    pub fn id(&self) -> &AccountId {
        &self.id
    }
    /// A blind25 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let hash = blake2b_keyed_64(
            b"SessCommBlind25_sig",
            &[&self.seedhash[..], &self.ka_pub, message],
        );
        let r = Zeroizing::new(Scalar::from_bytes_mod_order_wide(&hash));
        finish_signature(&self.ka, &self.ka_pub, &r, &[message])
    }
}

/// The Ed25519 point with sign bit 0 behind a standard Account ID.
fn positive_point(account: &AccountId) -> Result<EdwardsPoint, CommunityError> {
    if account.prefix() != Some(Prefix::Standard) {
        return Err(CommunityError::NotStandard {
            prefix: account.prefix_byte(),
        });
    }
    let ed = x25519_pk_to_ed25519(account.key()).ok_or(CommunityError::BadPoint {
        what: "the Account ID's key",
    })?;
    prime_order_point(&ed, "the Account ID's key")
}

/// The two blind15 IDs a standard Account ID may have on a server (`k·A⁺`, then the same with
/// the sign bit flipped); one of them is the real one.
pub fn blind15_candidates(
    account: &AccountId,
    server_pk: &[u8; 32],
) -> Result<[AccountId; 2], CommunityError> {
    let point = positive_point(account)?;
    let key = (blind15_factor(server_pk) * point).compress().to_bytes();
    let mut flipped = key;
    flipped[31] ^= 0x80;
    Ok([
        AccountId::new(Prefix::Blinded15, key),
        AccountId::new(Prefix::Blinded15, flipped),
    ])
}

/// The blind25 ID of a standard Account ID on a server (unambiguous).
pub fn blind25_id(account: &AccountId, server_pk: &[u8; 32]) -> Result<AccountId, CommunityError> {
    let point = positive_point(account)?;
    let k = blind25_factor(account.key(), server_pk);
    Ok(AccountId::new(
        Prefix::Blinded25,
        (k * point).compress().to_bytes(),
    ))
}

/// The exact blind15 ID of a real Ed25519 key (`k·A`; no sign ambiguity).
pub fn blind15_id_from_ed25519(
    ed_pk: &[u8; 32],
    server_pk: &[u8; 32],
) -> Result<AccountId, CommunityError> {
    let point = prime_order_point(ed_pk, "the Ed25519 key")?;
    Ok(AccountId::new(
        Prefix::Blinded15,
        (blind15_factor(server_pk) * point).compress().to_bytes(),
    ))
}

/// Whether `blinded` (a `15…` or `25…` ID seen on the server with key `server_pk`) belongs to
/// the standard Account ID `account`. Other prefixes never match.
pub fn matches_blinded(account: &AccountId, blinded: &AccountId, server_pk: &[u8; 32]) -> bool {
    match blinded.prefix() {
        Some(Prefix::Blinded15) => {
            blind15_candidates(account, server_pk).is_ok_and(|c| c.contains(blinded))
        }
        Some(Prefix::Blinded25) => blind25_id(account, server_pk).is_ok_and(|id| id == *blinded),
        _ => false,
    }
}

/// Finds which of `known` Account IDs a blinded ID belongs to (desktop runs this over approved
/// contacts and caches the hits). The blinding factor is computed once.
pub fn find_blinded_owner<'a>(
    blinded: &AccountId,
    server_pk: &[u8; 32],
    known: impl IntoIterator<Item = &'a AccountId>,
) -> Option<&'a AccountId> {
    match blinded.prefix() {
        Some(Prefix::Blinded15) => {
            let k = blind15_factor(server_pk);
            let mut want = *blinded.key();
            want[31] &= 0x7f;
            known.into_iter().find(|a| {
                positive_point(a).is_ok_and(|p| {
                    let mut got = (k * p).compress().to_bytes();
                    got[31] &= 0x7f;
                    got == want
                })
            })
        }
        Some(Prefix::Blinded25) => known
            .into_iter()
            .find(|a| matches_blinded(a, blinded, server_pk)),
        _ => None,
    }
}

/// Verifies a plain Ed25519 signature by a blinded (`15`/`25`) or unblinded (`00`) key, or an
/// XEd25519 signature by a standard (`05`) Account ID (the positive Ed25519 key).
pub fn verify_by_id(
    id: &AccountId,
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), CommunityError> {
    let key = match id.prefix() {
        Some(Prefix::Blinded15 | Prefix::Blinded25 | Prefix::Unblinded) => *id.key(),
        Some(Prefix::Standard) => {
            x25519_pk_to_ed25519(id.key()).ok_or(CommunityError::BadPoint {
                what: "the sender's key",
            })?
        }
        _ => {
            return Err(CommunityError::WrongPrefix {
                expected: "15, 25, 00 or 05",
                prefix: id.prefix_byte(),
            })
        }
    };
    let vk = VerifyingKey::from_bytes(&key).map_err(|_| CommunityError::BadPoint {
        what: "the sender's key",
    })?;
    vk.verify(message, &Signature::from_bytes(signature))
        .map_err(|_| CommunityError::BadSignature { what: "message" })
}

/// The "version blinded" (`07`) key pair used to sign file-server version checks:
/// an Ed25519 key from the seed `BLAKE2b-256_key("VersionCheckKey_sig")(seed)`.
pub fn version_blinded_key(keys: &IdentityKeys) -> SigningKey {
    let seed = Zeroizing::new(blake2b_keyed_32(b"VersionCheckKey_sig", &[keys.seed()]));
    SigningKey::from_bytes(&seed)
}
