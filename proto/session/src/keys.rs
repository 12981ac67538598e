//! Identity keys from a 32-byte seed: the Ed25519 pair, its X25519 conversion and the Account ID.
//!
//! Derivation (libsodium names):
//! 1. `seed32`: 32 bytes; a recovery-password account uses `seed16 || 00×16`.
//! 2. `(ed_pk, ed_sk) = crypto_sign_ed25519_seed_keypair(seed32)`.
//! 3. `x_sk = SHA-512(seed32)[..32]`, clamped (`crypto_sign_ed25519_sk_to_curve25519`).
//! 4. `x_pk = crypto_sign_ed25519_pk_to_curve25519(ed_pk)`: u = (1 + y) / (1 − y).
//! 5. Account ID = `05 || x_pk`.
//!
//! Everything derived is computed once in [`IdentityKeys::from_seed`] and kept, so signing and
//! opening sealed boxes never redo the hashing or the point conversion. Secrets are zeroized on
//! drop.

use std::fmt;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::traits::IsIdentity;
use curve25519_dalek::Scalar;
use ed25519_dalek::hazmat::ExpandedSecretKey;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha512};
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, Zeroizing};

use crate::account_id::AccountId;
use crate::err::{KeyError, MnemonicError};
use crate::mnemonic;

/// Converts an Ed25519 public key to its X25519 (Montgomery u) form, as libsodium's
/// `crypto_sign_ed25519_pk_to_curve25519` does: keys that do not decode, have small order or lie
/// outside the prime-order subgroup are refused.
pub fn ed25519_pk_to_x25519(ed_pk: &[u8; 32]) -> Result<[u8; 32], KeyError> {
    let point = CompressedEdwardsY(*ed_pk)
        .decompress()
        .ok_or(KeyError::NotAPoint)?;
    ed25519_point_to_x25519(&point)
}

/// [`ed25519_pk_to_x25519`] for a point that is already decompressed (e.g. from a
/// [`VerifyingKey`]), which saves the square root.
pub fn ed25519_point_to_x25519(point: &EdwardsPoint) -> Result<[u8; 32], KeyError> {
    if point.is_small_order() {
        return Err(KeyError::SmallOrder);
    }
    if !is_torsion_free_vartime(point) {
        return Err(KeyError::NotInPrimeSubgroup);
    }
    Ok(point.to_montgomery().to_bytes())
}

/// Whether `[ℓ]P` is the identity, in variable time (P is a public key, so timing reveals
/// nothing). `−1 mod ℓ` is the integer `ℓ − 1`, and the multiplication uses that integer, so
/// `[ℓ − 1]P + P = [ℓ]P` exactly, torsion part included.
fn is_torsion_free_vartime(point: &EdwardsPoint) -> bool {
    let l_minus_one = -Scalar::ONE;
    let q = EdwardsPoint::vartime_double_scalar_mul_basepoint(&l_minus_one, point, &Scalar::ZERO);
    (q + point).is_identity()
}

/// The Ed25519 public key with sign bit 0 whose X25519 form is `x_pk` (y = (u − 1) / (u + 1)).
///
/// An Account ID does not say which of the two signs the real key has; blinding code that needs
/// the Ed25519 key from an Account ID uses this one (libsession `xed25519::pubkey`). Returns
/// `None` when `x_pk` has no Edwards counterpart (u = −1).
pub fn x25519_pk_to_ed25519(x_pk: &[u8; 32]) -> Option<[u8; 32]> {
    MontgomeryPoint(*x_pk)
        .to_edwards(0)
        .map(|p| p.compress().to_bytes())
}

/// The keys of one Session identity, derived once from a 32-byte seed.
///
/// `Debug` shows only the redacted Account ID.
pub struct IdentityKeys {
    seed: Zeroizing<[u8; 32]>,
    signing: SigningKey,
    verifying: VerifyingKey,
    /// `SHA-512(seed)` split into the signing scalar and nonce prefix, so signing skips the hash.
    expanded: ExpandedSecretKey,
    x_secret: StaticSecret,
    x_public: [u8; 32],
    account_id: AccountId,
}

impl IdentityKeys {
    /// Derives every key from a 32-byte Ed25519 seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let verifying = signing.verifying_key();
        // One SHA-512 of the seed gives both the Ed25519 signing scalar and the X25519 secret.
        let mut hash: [u8; 64] = Sha512::digest(seed).into();
        let expanded = ExpandedSecretKey::from_bytes(&hash);
        let mut x_sk = [0u8; 32];
        x_sk.copy_from_slice(&hash[..32]);
        hash.zeroize();
        // StaticSecret clamps when it multiplies; clamp here too so that `x25519_secret` bytes
        // match libsodium's `crypto_sign_ed25519_sk_to_curve25519`.
        x_sk[0] &= 248;
        x_sk[31] &= 127;
        x_sk[31] |= 64;
        let x_secret = StaticSecret::from(x_sk);
        x_sk.zeroize();
        // The key of a seed is a prime-order point, so this is the plain birational map.
        let x_public = verifying.to_montgomery().to_bytes();
        Self {
            seed: Zeroizing::new(*seed),
            signing,
            verifying,
            expanded,
            x_secret,
            x_public,
            account_id: AccountId::standard(x_public),
        }
    }

    /// Derives the keys of a recovery-password account: `seed32 = seed16 || 00×16`.
    pub fn from_seed16(seed16: &[u8; 16]) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        seed[..16].copy_from_slice(seed16);
        Self::from_seed(&seed)
    }

    /// Restores an identity from its 13-word recovery password.
    pub fn from_recovery_password(phrase: &str) -> Result<Self, MnemonicError> {
        let seed16 = mnemonic::decode_recovery_password(phrase)?;
        Ok(Self::from_seed16(&seed16))
    }

    /// Makes a new identity the way Session clients do: 16 random bytes, so that it has a
    /// 13-word recovery password.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut seed16 = Zeroizing::new([0u8; 16]);
        rng.fill_bytes(&mut seed16[..]);
        Self::from_seed16(&seed16)
    }

    /// The 32-byte seed (secret).
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The 13-word recovery password, if this identity's seed has the `seed16 || 00×16` form.
    pub fn recovery_password(&self) -> Option<Zeroizing<String>> {
        if self.seed[16..].iter().any(|&b| b != 0) {
            return None;
        }
        let seed16: &[u8; 16] = self.seed[..16]
            .try_into()
            .expect("the first half of a 32-byte seed is 16 bytes");
        Some(mnemonic::encode_recovery_password(seed16))
    }

    /// The Ed25519 signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The Ed25519 public key.
    pub fn ed25519_public(&self) -> &[u8; 32] {
        self.verifying.as_bytes()
    }

    /// The Ed25519 public key as a verifying key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// The X25519 secret key (the clamped first half of SHA-512(seed)).
    pub fn x25519_secret(&self) -> &StaticSecret {
        &self.x_secret
    }

    /// The X25519 public key (the Account ID without its `05`).
    pub fn x25519_public(&self) -> &[u8; 32] {
        &self.x_public
    }

    /// The standard (`05`) Account ID.
    pub fn account_id(&self) -> &AccountId {
        &self.account_id
    }

    /// An Ed25519 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        ed25519_dalek::hazmat::raw_sign::<Sha512>(&self.expanded, message, &self.verifying)
    }

    /// An Ed25519 signature over the concatenation of `parts`, without copying them together.
    pub fn sign_parts(&self, parts: &[&[u8]]) -> Signature {
        ed25519_dalek::hazmat::raw_sign_byupdate::<Sha512, _>(
            &self.expanded,
            |h| {
                for part in parts {
                    h.update(part);
                }
                Ok(())
            },
            &self.verifying,
        )
        .expect("the update closure never fails")
    }

    /// X25519 Diffie-Hellman with our secret key.
    pub fn x25519_dh(&self, their_public: &[u8; 32]) -> Zeroizing<[u8; 32]> {
        let shared = self
            .x_secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(*their_public));
        Zeroizing::new(shared.to_bytes())
    }
}

impl Clone for IdentityKeys {
    fn clone(&self) -> Self {
        Self::from_seed(&self.seed)
    }
}

impl fmt::Debug for IdentityKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKeys")
            .field("account_id", &self.account_id.redacted())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const VECTORS: &str = include_str!("../tests/data/keys-and-account-ids.json");

    fn hex32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    fn check(keys: &IdentityKeys, v: &Value) {
        for (field, got) in [
            ("ed25519_pubkey_hex", hex::encode(keys.ed25519_public())),
            (
                "ed25519_pubkey_hex_derived",
                hex::encode(keys.ed25519_public()),
            ),
            ("x25519_pubkey_hex", hex::encode(keys.x25519_public())),
            (
                "x25519_secret_key_hex",
                hex::encode(keys.x25519_secret().to_bytes()),
            ),
            (
                "x25519_secret_key_hex_derived",
                hex::encode(keys.x25519_secret().to_bytes()),
            ),
            ("account_id", keys.account_id().to_string()),
            ("account_id_derived", keys.account_id().to_string()),
        ] {
            if let Some(want) = v[field].as_str() {
                assert_eq!(got, want, "{field} of {}", v["source"]);
            }
        }
        if let Some(sk64) = v["ed25519_secret_key_64_hex"].as_str() {
            let mut ours = keys.seed().to_vec();
            ours.extend_from_slice(keys.ed25519_public());
            assert_eq!(hex::encode(ours), sk64);
        }
    }

    #[test]
    fn vectors() {
        let doc: Value = serde_json::from_str(VECTORS).unwrap();
        let vectors = doc["vectors"].as_array().unwrap();
        let mut checked = 0;
        for v in vectors {
            let keys = if let Some(seed) = v["ed25519_seed_hex"].as_str() {
                IdentityKeys::from_seed(&hex32(seed))
            } else if let Some(seed16) = v["seed16_hex"].as_str() {
                IdentityKeys::from_seed16(&hex::decode(seed16).unwrap().try_into().unwrap())
            } else {
                IdentityKeys::from_recovery_password(v["mnemonic"].as_str().unwrap()).unwrap()
            };
            check(&keys, v);
            if let Some(phrase) = v["mnemonic"].as_str() {
                let restored = IdentityKeys::from_recovery_password(phrase).unwrap();
                check(&restored, v);
                assert_eq!(restored.recovery_password().unwrap().as_str(), phrase);
            }
            if let Some(seed16) = v["seed16_hex_derived"].as_str() {
                assert_eq!(hex::encode(&keys.seed()[..16]), seed16);
            }
            checked += 1;
        }
        assert_eq!(checked, 6);
    }

    #[test]
    fn conversion_matches_derivation_and_inverts() {
        let keys = IdentityKeys::from_seed(&[7u8; 32]);
        let x = ed25519_pk_to_x25519(keys.ed25519_public()).unwrap();
        assert_eq!(&x, keys.x25519_public());
        // The inverse gives the key or its negation (sign bit cleared).
        let ed = x25519_pk_to_ed25519(&x).unwrap();
        let mut ours = *keys.ed25519_public();
        ours[31] &= 0x7f;
        assert_eq!(ed, ours);
        // A 32-byte seed that is not of the seed16 form has no recovery password.
        assert!(keys.recovery_password().is_none());
    }

    #[test]
    fn conversion_refuses_bad_points() {
        // The identity point (y = 1) has small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(ed25519_pk_to_x25519(&identity), Err(KeyError::SmallOrder));
        // y = 2 is not on the curve.
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert_eq!(ed25519_pk_to_x25519(&not_a_point), Err(KeyError::NotAPoint));
        // A valid key plus a point of order 8 is on the curve but has a torsion part.
        let keys = IdentityKeys::from_seed(&[9u8; 32]);
        let a = CompressedEdwardsY(*keys.ed25519_public())
            .decompress()
            .unwrap();
        let t = curve25519_dalek::constants::EIGHT_TORSION[1];
        let mixed = (a + t).compress().to_bytes();
        assert_eq!(
            ed25519_pk_to_x25519(&mixed),
            Err(KeyError::NotInPrimeSubgroup)
        );
    }

    #[test]
    fn vartime_torsion_check_matches_dalek() {
        let keys = IdentityKeys::from_seed(&[5u8; 32]);
        let a = CompressedEdwardsY(*keys.ed25519_public())
            .decompress()
            .unwrap();
        for t in curve25519_dalek::constants::EIGHT_TORSION {
            let p = a + t;
            assert_eq!(is_torsion_free_vartime(&p), p.is_torsion_free());
            assert_eq!(is_torsion_free_vartime(&t), t.is_torsion_free());
        }
    }

    #[test]
    fn signatures_verify_and_parts_match_whole() {
        let keys = IdentityKeys::from_seed(&[3u8; 32]);
        let sig = keys.sign(b"hello world");
        keys.verifying_key()
            .verify_strict(b"hello world", &sig)
            .unwrap();
        assert_eq!(keys.sign_parts(&[b"hello", b" ", b"world"]), sig);
        // Same as the plain dalek signer.
        use ed25519_dalek::Signer;
        assert_eq!(keys.signing_key().sign(b"hello world"), sig);
    }

    #[test]
    fn generate_has_recovery_password_and_debug_is_redacted() {
        let mut rng = rand::rngs::OsRng;
        let keys = IdentityKeys::generate(&mut rng);
        let phrase = keys.recovery_password().unwrap();
        let back = IdentityKeys::from_recovery_password(&phrase).unwrap();
        assert_eq!(back.account_id(), keys.account_id());
        let dbg = format!("{keys:?}");
        assert!(!dbg.contains(&keys.account_id().to_string()));
        assert!(dbg.contains('…'));
        assert_eq!(keys.clone().account_id(), keys.account_id());
    }
}
