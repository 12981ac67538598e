//! Subaccount authentication to the group swarm (groups.md §5): the admin issues each member a
//! 100-byte `memberAuthData`; the member turns it into a storage-server subaccount token and
//! signs requests with a blinded key the admin never learns.
//!
//! Notation: X = member X25519 key (Account ID without `05`); T = the Ed25519 point with sign bit
//! 0 for X; S = the member's real Ed25519 key; k = the blinding factor.
//!
//! Layouts:
//! - token (36 bytes, the `subaccount` request field): `03 ‖ flags ‖ 00 00 ‖ k·T`;
//! - memberAuthData (100 bytes): `03 ‖ flags ‖ 00 00 ‖ k ‖ Ed25519_sign(token, group_sk)`;
//! - `k = scalar_reduce(BLAKE2b-512(05 ‖ X ‖ 03 ‖ group_pk, key = seed_hash("SessionGroupSubaccountMask")))`.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::Scalar;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use super::{blake2b_256_keyed, blake2b_512_keyed, GroupAdminKeys};
use crate::account_id::{AccountId, Prefix};
use crate::err::GroupError;
use crate::keys::{x25519_pk_to_ed25519, IdentityKeys};
use crate::storage_rpc::{Sig, SubaccountAuth, SubaccountToken};

/// Length of `memberAuthData`.
pub const AUTH_DATA_LEN: usize = 100;
/// The flags libsession issues by default: read | write.
pub const DEFAULT_FLAGS: u8 = SubaccountToken::READ | SubaccountToken::WRITE;

/// A member's credential for the group swarm: the 100-byte `memberAuthData` from the invite.
///
/// `Debug` shows only the flags.
#[derive(Clone, PartialEq, Eq)]
pub struct MemberAuthData(pub [u8; AUTH_DATA_LEN]);

impl std::fmt::Debug for MemberAuthData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MemberAuthData(flags={:#04x})", self.0[1])
    }
}

impl MemberAuthData {
    /// Takes exactly 100 bytes (the invite's `memberAuthData`).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, GroupError> {
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| GroupError::Subaccount {
                reason: "memberAuthData must be 100 bytes",
            })
    }

    /// The 4-byte token header: prefix, flags, two reserved bytes.
    pub fn header(&self) -> [u8; 4] {
        [self.0[0], self.0[1], self.0[2], self.0[3]]
    }

    /// The admin's signature over the token (the `subaccount_sig` request field).
    pub fn token_signature(&self) -> Sig {
        Sig(self.0[36..]
            .try_into()
            .expect("bytes 36..100 of 100 are 64"))
    }

    fn blind_factor(&self) -> Scalar {
        let k: [u8; 32] = self.0[4..36].try_into().expect("bytes 4..36 are 32");
        Scalar::from_bytes_mod_order(k)
    }
}

/// `k`: the blinding factor of `member` in the group (admin only: it needs the seed).
fn blind_factor(group: &GroupAdminKeys, member: &AccountId) -> Scalar {
    let mask = group.seed_hash(b"SessionGroupSubaccountMask");
    let wide = Zeroizing::new(blake2b_512_keyed(
        &mask[..],
        &[member.as_bytes(), group.id().as_bytes()],
    ));
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// T: the sign-0 Ed25519 point of a `05` member's X25519 key.
fn member_point(member: &AccountId) -> Result<EdwardsPoint, GroupError> {
    if member.prefix() != Some(Prefix::Standard) {
        return Err(GroupError::BadMember {
            reason: "members have 05 Account IDs",
        });
    }
    x25519_pk_to_ed25519(member.key())
        .and_then(|t| CompressedEdwardsY(t).decompress())
        .ok_or(GroupError::BadMember {
            reason: "the X25519 key has no Ed25519 form",
        })
}

fn token_bytes(flags: u8, kt: &EdwardsPoint) -> [u8; 36] {
    let mut t = [0u8; 36];
    t[0] = Prefix::Group.byte();
    t[1] = flags;
    t[4..].copy_from_slice(kt.compress().as_bytes());
    t
}

/// The storage-server token of `member` (admin side, `swarm_subaccount_token`): what
/// `revoke_subaccount` / `unrevoke_subaccount` name. Deterministic per (member, group, flags).
pub fn subaccount_token(
    group: &GroupAdminKeys,
    member: &AccountId,
    flags: u8,
) -> Result<SubaccountToken, GroupError> {
    let t = member_point(member)?;
    Ok(SubaccountToken(token_bytes(
        flags,
        &(blind_factor(group, member) * t),
    )))
}

/// The `memberAuthData` an admin puts in an invite (`swarm_make_subaccount`).
pub fn make_member_auth_data(
    group: &GroupAdminKeys,
    member: &AccountId,
    flags: u8,
) -> Result<MemberAuthData, GroupError> {
    let k = blind_factor(group, member);
    let token = token_bytes(flags, &(k * member_point(member)?));
    let mut out = [0u8; AUTH_DATA_LEN];
    out[..4].copy_from_slice(&token[..4]);
    out[4..36].copy_from_slice(k.as_bytes());
    out[36..].copy_from_slice(&group.keys().sign(&token).to_bytes());
    Ok(MemberAuthData(out))
}

/// A member's signer for the group swarm, built from its own keys and its `memberAuthData`.
///
/// Construction checks the credential (`swarm_verify_subaccount`): the prefix is `03` (or the
/// any-prefix flag is set), the read flag is set, and the admin's signature covers the token
/// this member derives. `Debug` shows only the flags.
pub struct SubaccountSigner {
    token: SubaccountToken,
    token_sig: Sig,
    /// `k·t`, the scalar that signs for `k·T`.
    scalar: Scalar,
    /// `BLAKE2b-256(seed, key = "SubaccountSeed")`, the nonce key.
    nonce_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for SubaccountSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SubaccountSigner(flags={:#04x})", self.token.flags())
    }
}

impl SubaccountSigner {
    /// Checks `auth` for `own` in the group `group_pk` and prepares to sign.
    pub fn new(
        own: &IdentityKeys,
        group_pk: &[u8; 32],
        auth: &MemberAuthData,
    ) -> Result<Self, GroupError> {
        let header = auth.header();
        let flags = header[1];
        if header[0] != Prefix::Group.byte() && flags & SubaccountToken::ANY_PREFIX == 0 {
            return Err(GroupError::Subaccount {
                reason: "the token is not for 03 groups",
            });
        }
        if flags & SubaccountToken::READ == 0 {
            return Err(GroupError::Subaccount {
                reason: "the token lacks the read flag",
            });
        }
        let k = auth.blind_factor();
        // |S|: our Ed25519 key with the sign bit cleared, which is T for our X25519 key.
        let mut s_abs = *own.ed25519_public();
        let negative = s_abs[31] & 0x80 != 0;
        s_abs[31] &= 0x7f;
        let t = CompressedEdwardsY(s_abs)
            .decompress()
            .ok_or(GroupError::BadMember {
                reason: "own key does not decompress",
            })?;
        let mut token = [0u8; 36];
        token[..4].copy_from_slice(&header);
        token[4..].copy_from_slice((k * t).compress().as_bytes());
        let group_vk = VerifyingKey::from_bytes(group_pk).map_err(|_| GroupError::Subaccount {
            reason: "the group key is not a point",
        })?;
        let sig = Signature::from_bytes(&auth.token_signature().0);
        group_vk
            .verify_strict(&token, &sig)
            .map_err(|_| GroupError::Subaccount {
                reason: "the admin signature does not cover this member's token",
            })?;
        // a: the clamped scalar of our seed; t = ±a to match |S|.
        let a = Scalar::from_bytes_mod_order(own.x25519_secret().to_bytes());
        let t_scalar = if negative { -a } else { a };
        Ok(Self {
            token: SubaccountToken(token),
            token_sig: auth.token_signature(),
            scalar: k * t_scalar,
            nonce_key: Zeroizing::new(blake2b_256_keyed(b"SubaccountSeed", &[own.seed()])),
        })
    }

    /// The token (the `subaccount` request field).
    pub fn token(&self) -> &SubaccountToken {
        &self.token
    }

    /// The request fields `subaccount` and `subaccount_sig`.
    pub fn auth(&self) -> SubaccountAuth {
        SubaccountAuth {
            subaccount: Some(self.token),
            subaccount_sig: Some(self.token_sig),
        }
    }

    /// Signs a storage request message (e.g. `"retrieve" ‖ ns ‖ ts`) as `k·T`: a standard
    /// Ed25519 signature for the token's key, with a deterministic nonce.
    pub fn sign(&self, msg: &[u8]) -> Sig {
        let kt_bytes: &[u8; 32] = self.token.pubkey();
        let r_wide = Zeroizing::new(blake2b_512_keyed(
            b"SubaccountSig",
            &[&self.nonce_key[..], kt_bytes, msg],
        ));
        let r = Scalar::from_bytes_mod_order_wide(&r_wide);
        let big_r = EdwardsPoint::mul_base(&r).compress();
        let mut h = Sha512::new();
        h.update(big_r.as_bytes());
        h.update(kt_bytes);
        h.update(msg);
        let hram = Scalar::from_hash(h);
        let s = r + hram * self.scalar;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(big_r.as_bytes());
        sig[32..].copy_from_slice(s.as_bytes());
        Sig(sig)
    }
}

impl Drop for SubaccountSigner {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.scalar.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_vectors::*;
    use super::*;
    use crate::storage_rpc::sign::{retrieve_message, store_message, verify};

    fn b64(s: &serde_json::Value) -> Vec<u8> {
        crate::storage_rpc::wire::decode_base64(s.as_str().expect("b64")).expect("b64")
    }

    #[test]
    fn libsession_swarm_authentication_vector() {
        let v = libsession("swarm_subaccount_sign");
        let group = GroupAdminKeys::from_seed(&hex32(&v["group_seed"]));
        let member = IdentityKeys::from_seed(&hex32(&v["member_seed"]));
        assert_eq!(member.account_id().to_string(), v["member_session_id"]);
        let auth =
            make_member_auth_data(&group, member.account_id(), DEFAULT_FLAGS).expect("auth data");
        assert_eq!(hex::encode(auth.0), v["auth_data_hex_recomputed"]);
        let signer = SubaccountSigner::new(&member, group.public_key(), &auth).expect("valid");
        assert_eq!(signer.token().0.to_vec(), b64(&v["subaccount_b64"]));
        assert_eq!(
            auth.token_signature().0.to_vec(),
            b64(&v["subaccount_sig_b64"])
        );
        let msg = v["message_to_sign_ascii"]
            .as_str()
            .expect("ascii")
            .as_bytes();
        assert_eq!(msg, retrieve_message(999, 1_693_340_111_000));
        let sig = signer.sign(msg);
        assert_eq!(sig.0.to_vec(), b64(&v["signature_b64"]));
        // A plain Ed25519 signature for the token's key, as the storage server checks it.
        assert!(verify(signer.token().pubkey(), msg, &sig));
        // The admin computes the same token without the member's keys.
        let token = subaccount_token(&group, member.account_id(), DEFAULT_FLAGS).expect("token");
        assert_eq!(token, *signer.token());
    }

    #[test]
    fn derived_member_and_revocation_vectors() {
        let d = derived();
        let group = GroupAdminKeys::from_seed(&hex32(&d["inputs"]["group_seed"]));
        let m1 = IdentityKeys::from_seed(&hex32(&d["inputs"]["member1_seed"]));
        let v = &d["subaccount_member1"];
        let auth = make_member_auth_data(&group, m1.account_id(), DEFAULT_FLAGS).expect("auth");
        assert_eq!(hex::encode(auth.0), v["memberAuthData_hex"]);
        let signer = SubaccountSigner::new(&m1, group.public_key(), &auth).expect("valid");
        assert_eq!(signer.token().0.to_vec(), b64(&v["subaccount_b64"]));
        let msg = store_message(11, 1_700_000_000_123);
        assert_eq!(
            msg,
            v["store_ns11_signed_ascii"]
                .as_str()
                .expect("ascii")
                .as_bytes()
        );
        assert_eq!(signer.sign(&msg).0.to_vec(), b64(&v["signature_b64"]));
        let auth_fields = signer.auth();
        assert_eq!(
            auth_fields.subaccount_sig.expect("sig").0.to_vec(),
            b64(&v["subaccount_sig_b64"])
        );

        let m2 = IdentityKeys::from_seed(&hex32(&d["inputs"]["member2_seed"]));
        let token = subaccount_token(&group, m2.account_id(), DEFAULT_FLAGS).expect("token");
        assert_eq!(hex::encode(token.0), d["revoke_token_member2_hex"]);
    }

    #[test]
    fn members_with_either_sign_bit_sign_validly() {
        let group = GroupAdminKeys::from_seed(&[7; 32]);
        let mut seen = [false; 2];
        for i in 0..32u8 {
            let m = IdentityKeys::from_seed(&[i; 32]);
            seen[usize::from(m.ed25519_public()[31] >> 7)] = true;
            let auth = make_member_auth_data(&group, m.account_id(), DEFAULT_FLAGS).expect("auth");
            let signer = SubaccountSigner::new(&m, group.public_key(), &auth).expect("valid");
            let msg = retrieve_message(11, 1_700_000_000_000 + u64::from(i));
            assert!(verify(signer.token().pubkey(), &msg, &signer.sign(&msg)));
        }
        assert_eq!(seen, [true, true], "both sign bits were exercised");
    }

    #[test]
    fn bad_credentials_are_refused() {
        let group = GroupAdminKeys::from_seed(&[7; 32]);
        let m = IdentityKeys::from_seed(&[1; 32]);
        let other = IdentityKeys::from_seed(&[2; 32]);
        let auth = make_member_auth_data(&group, m.account_id(), DEFAULT_FLAGS).expect("auth");
        // Someone else's auth data.
        assert!(SubaccountSigner::new(&other, group.public_key(), &auth).is_err());
        // Another group's key.
        let g2 = GroupAdminKeys::from_seed(&[8; 32]);
        assert!(SubaccountSigner::new(&m, g2.public_key(), &auth).is_err());
        // Any flipped byte of k or the signature.
        for i in [4, 20, 35, 36, 70, 99] {
            let mut bad = auth.clone();
            bad.0[i] ^= 1;
            assert!(
                SubaccountSigner::new(&m, group.public_key(), &bad).is_err(),
                "byte {i}"
            );
        }
        // The header is signed too: another prefix, or no read flag.
        let mut bad = auth.clone();
        bad.0[0] = 0x05;
        assert!(SubaccountSigner::new(&m, group.public_key(), &bad).is_err());
        let write_only =
            make_member_auth_data(&group, m.account_id(), SubaccountToken::WRITE).expect("auth");
        assert!(matches!(
            SubaccountSigner::new(&m, group.public_key(), &write_only),
            Err(GroupError::Subaccount { .. })
        ));
        // Wrong lengths and non-05 members.
        assert!(MemberAuthData::from_slice(&[0u8; 99]).is_err());
        assert!(MemberAuthData::from_slice(&auth.0).is_ok());
        assert!(make_member_auth_data(&group, group.id(), DEFAULT_FLAGS).is_err());
        assert!(!format!("{auth:?}").contains(&hex::encode(&auth.0[4..8])));
    }
}
