//! How a storage request proves the right to an account's namespace (network.md §4.2,
//! groups.md §5): the account's own Ed25519 key, a group's admin key, a group subaccount
//! token, or nothing (public inboxes, unauthenticated namespaces).

use std::fmt;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use session_proto::storage_rpc::sign::sign;
use session_proto::storage_rpc::{Ed25519Pubkey, Sig, SubaccountAuth, SubaccountToken, UserPubkey};

/// Makes Ed25519 signatures a snode verifies with one public key.
///
/// [`SigningKey`] is one. A group member's subaccount signer is another: its signatures are
/// standard Ed25519 signatures for the token's key `kT`, made with the blinded scalar
/// (groups.md §5.5); the group code implements this trait for it.
pub trait Signer: Send + Sync + 'static {
    /// Signs `msg`.
    fn sign(&self, msg: &[u8]) -> Sig;
}

impl Signer for SigningKey {
    fn sign(&self, msg: &[u8]) -> Sig {
        sign(self, msg)
    }
}

/// The authentication of a storage request.
///
/// | variant | account | fields sent |
/// |---|---|---|
/// | [`Auth::Account`] | a `05` Account ID | `signature` by the key, `pubkey_ed25519` |
/// | [`Auth::GroupAdmin`] | a `03` group | `signature` by the group key |
/// | [`Auth::Subaccount`] | a `03` group | `signature` by the member, `subaccount`, `subaccount_sig` |
/// | [`Auth::None`] | any | nothing: public-inbox stores, unauthenticated retrieves |
///
/// Which namespaces need which is the snode's rule (network.md §4.3); a wrong or missing
/// signature comes back as [`NetError::Rejected`](crate::NetError::Rejected) with the snode's
/// status (401).
#[derive(Clone, Default)]
pub enum Auth {
    /// No signature.
    #[default]
    None,
    /// A `05` account's own Ed25519 key: its namespaces 0 and 2-5, negative namespaces…
    Account(SigningKey),
    /// A `03` group's admin key (the group's Ed25519 secret key): every group namespace.
    GroupAdmin(SigningKey),
    /// A group member's subaccount (groups.md §5): the 36-byte token, the admin's signature
    /// over it, and the member's signer for the token's key.
    Subaccount {
        /// The token `03 ‖ flags ‖ 00 00 ‖ kT`.
        token: SubaccountToken,
        /// The group key's signature over the token.
        token_sig: Sig,
        /// Signs requests for `kT`.
        signer: Arc<dyn Signer>,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Auth::None => "Auth::None",
            Auth::Account(_) => "Auth::Account(..)",
            Auth::GroupAdmin(_) => "Auth::GroupAdmin(..)",
            Auth::Subaccount { .. } => "Auth::Subaccount(..)",
        })
    }
}

/// The signature fields of one signed request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Signed {
    pub(crate) signature: Option<Sig>,
    pub(crate) pubkey_ed25519: Option<Ed25519Pubkey>,
    pub(crate) sub: SubaccountAuth,
}

impl Auth {
    /// Whether requests carry a signature.
    pub fn signs(&self) -> bool {
        !matches!(self, Auth::None)
    }

    /// The signature fields for `account` over `msg` (nothing for [`Auth::None`]).
    pub(crate) fn sign_for(&self, account: &UserPubkey, msg: &[u8]) -> Signed {
        match self {
            Auth::None => Signed::default(),
            Auth::Account(key) => Signed {
                signature: Some(Signer::sign(key, msg)),
                // Named for 05 accounts only: snodes refuse it for other prefixes.
                pubkey_ed25519: (account.prefix() == 0x05)
                    .then(|| Ed25519Pubkey(key.verifying_key().to_bytes())),
                sub: SubaccountAuth::default(),
            },
            Auth::GroupAdmin(key) => Signed {
                signature: Some(Signer::sign(key, msg)),
                pubkey_ed25519: None,
                sub: SubaccountAuth::default(),
            },
            Auth::Subaccount {
                token,
                token_sig,
                signer,
            } => Signed {
                signature: Some(signer.sign(msg)),
                pubkey_ed25519: None,
                sub: SubaccountAuth {
                    subaccount: Some(*token),
                    subaccount_sig: Some(*token_sig),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_proto::storage_rpc::sign::verify;

    #[test]
    fn fields_per_kind() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let mut acct = [0u8; 33];
        acct[0] = 0x05;
        let a05 = UserPubkey(acct);
        acct[0] = 0x03;
        let a03 = UserPubkey(acct);

        assert!(Auth::None.sign_for(&a05, b"m").signature.is_none());
        let s = Auth::Account(key.clone()).sign_for(&a05, b"m");
        let pk = key.verifying_key().to_bytes();
        assert!(verify(&pk, b"m", &s.signature.expect("signed")));
        assert_eq!(s.pubkey_ed25519, Some(Ed25519Pubkey(pk)));
        let s = Auth::Account(key.clone()).sign_for(&a03, b"m");
        assert_eq!(s.pubkey_ed25519, None);
        let s = Auth::GroupAdmin(key.clone()).sign_for(&a03, b"m");
        assert!(s.pubkey_ed25519.is_none() && s.sub.subaccount.is_none());

        let member = SigningKey::from_bytes(&[4; 32]);
        let mut t = [0u8; 36];
        t[0] = 0x03;
        t[1] = SubaccountToken::READ | SubaccountToken::WRITE;
        t[4..].copy_from_slice(&member.verifying_key().to_bytes());
        let token = SubaccountToken(t);
        let auth = Auth::Subaccount {
            token,
            token_sig: sign(&key, &token.0),
            signer: Arc::new(member.clone()),
        };
        let s = auth.sign_for(&a03, b"m");
        assert!(verify(
            &member.verifying_key().to_bytes(),
            b"m",
            &s.signature.expect("signed")
        ));
        assert_eq!(s.sub.subaccount, Some(token));
        assert!(format!("{auth:?}").contains("Subaccount"));
    }
}
