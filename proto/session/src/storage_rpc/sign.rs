//! The byte strings that storage-RPC signatures cover, and signing/verifying them.
//!
//! Signed messages are plain concatenations: literals, integers in base-10 ASCII, namespaces via
//! [`super::ns_str`] (empty for 0, or `all`), hashes as their 43-char strings. Two families:
//! *request* signatures made by the account (or a subaccount) key, checked by snodes; and
//! *result* signatures made by each swarm member's Ed25519 key over what it did, checked by
//! clients. Verification uses strict Ed25519 (no small-order keys or `R`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use super::request::{ExpireMode, Request, SubaccountAuth};
use super::wire::{Ed25519Pubkey, NamespaceOrAll, Sig, SubaccountToken, UserPubkey};
use super::{ns_str, retrieve_requires_auth, store_requires_auth};
use crate::err::RpcError;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

fn push_hashes<S: AsRef<str>>(v: &mut Vec<u8>, hashes: &[S]) {
    for h in hashes {
        v.extend_from_slice(h.as_ref().as_bytes());
    }
}

fn push_ints(v: &mut Vec<u8>, ints: &[u64]) {
    let mut s = String::new();
    for i in ints {
        let _ = write!(s, "{i}");
    }
    v.extend_from_slice(s.as_bytes());
}

/// `store`: `"store" ‖ ns_str ‖ sig_timestamp`.
pub fn store_message(ns: i16, sig_timestamp: u64) -> Vec<u8> {
    cat(&[
        b"store",
        ns_str(ns).as_bytes(),
        sig_timestamp.to_string().as_bytes(),
    ])
}

/// `retrieve`: `"retrieve" ‖ ns_str ‖ timestamp`.
pub fn retrieve_message(ns: i16, timestamp: u64) -> Vec<u8> {
    cat(&[
        b"retrieve",
        ns_str(ns).as_bytes(),
        timestamp.to_string().as_bytes(),
    ])
}

/// `delete`: `"delete" ‖ hash0 ‖ hash1 …` (in request order).
pub fn delete_message<S: AsRef<str>>(hashes: &[S]) -> Vec<u8> {
    let mut v = b"delete".to_vec();
    push_hashes(&mut v, hashes);
    v
}

/// `delete_all`: `"delete_all" ‖ (ns_str | "all") ‖ timestamp`.
pub fn delete_all_message(ns: NamespaceOrAll, timestamp: u64) -> Vec<u8> {
    cat(&[
        b"delete_all",
        ns.sig_str().as_bytes(),
        timestamp.to_string().as_bytes(),
    ])
}

/// `delete_before`: `"delete_before" ‖ (ns_str | "all") ‖ before`.
pub fn delete_before_message(ns: NamespaceOrAll, before: u64) -> Vec<u8> {
    cat(&[
        b"delete_before",
        ns.sig_str().as_bytes(),
        before.to_string().as_bytes(),
    ])
}

/// `expire`: `"expire" ‖ ("shorten" | "extend" | "") ‖ expiries… ‖ hashes…`.
pub fn expire_message<S: AsRef<str>>(mode: ExpireMode, expiries: &[u64], hashes: &[S]) -> Vec<u8> {
    let mut v = b"expire".to_vec();
    v.extend_from_slice(mode.sig_str().as_bytes());
    push_ints(&mut v, expiries);
    push_hashes(&mut v, hashes);
    v
}

/// `expire_all`: `"expire_all" ‖ (ns_str | "all") ‖ expiry`.
pub fn expire_all_message(ns: NamespaceOrAll, expiry: u64) -> Vec<u8> {
    cat(&[
        b"expire_all",
        ns.sig_str().as_bytes(),
        expiry.to_string().as_bytes(),
    ])
}

/// `get_expiries`: `"get_expiries" ‖ timestamp ‖ hashes…`.
pub fn get_expiries_message<S: AsRef<str>>(timestamp: u64, hashes: &[S]) -> Vec<u8> {
    let mut v = b"get_expiries".to_vec();
    v.extend_from_slice(timestamp.to_string().as_bytes());
    push_hashes(&mut v, hashes);
    v
}

/// `revoke_subaccount`: `"revoke_subaccount" ‖ timestamp ‖ token0 ‖ token1 …` (raw 36 bytes
/// each, in request order).
pub fn revoke_subaccount_message(timestamp: u64, tokens: &[SubaccountToken]) -> Vec<u8> {
    revocation_message("revoke_subaccount", timestamp, tokens)
}

/// `unrevoke_subaccount`: `"unrevoke_subaccount" ‖ timestamp ‖ token0 ‖ token1 …`.
pub fn unrevoke_subaccount_message(timestamp: u64, tokens: &[SubaccountToken]) -> Vec<u8> {
    revocation_message("unrevoke_subaccount", timestamp, tokens)
}

fn revocation_message(method: &str, timestamp: u64, tokens: &[SubaccountToken]) -> Vec<u8> {
    let mut v = method.as_bytes().to_vec();
    v.extend_from_slice(timestamp.to_string().as_bytes());
    for t in tokens {
        v.extend_from_slice(&t.0);
    }
    v
}

/// Per-member `revoke_subaccount` / `unrevoke_subaccount` result:
/// `account_hex66 ‖ timestamp ‖ token0 ‖ token1 …` (the requested tokens, raw).
pub fn revocation_result_message(
    account: &UserPubkey,
    timestamp: u64,
    tokens: &[SubaccountToken],
) -> Vec<u8> {
    let mut v = account.to_hex().into_bytes();
    v.extend_from_slice(timestamp.to_string().as_bytes());
    for t in tokens {
        v.extend_from_slice(&t.0);
    }
    v
}

/// Per-member `store` result: the hash string itself.
pub fn store_result_message(hash: &str) -> Vec<u8> {
    hash.as_bytes().to_vec()
}

/// Per-member `delete` result: `account_hex66 ‖ requested… ‖ deleted (sorted)…`.
pub fn delete_result_message<S: AsRef<str>, T: AsRef<str>>(
    account: &UserPubkey,
    requested: &[S],
    deleted_sorted: &[T],
) -> Vec<u8> {
    let mut v = account.to_hex().into_bytes();
    push_hashes(&mut v, requested);
    push_hashes(&mut v, deleted_sorted);
    v
}

/// Per-member `delete_all` (`timestamp`) and `delete_before` (`before`) result:
/// `account_hex66 ‖ timestamp ‖ deleted hashes, all sorted together…`.
pub fn delete_all_result_message<S: AsRef<str>>(
    account: &UserPubkey,
    timestamp: u64,
    deleted_sorted: &[S],
) -> Vec<u8> {
    let mut v = account.to_hex().into_bytes();
    v.extend_from_slice(timestamp.to_string().as_bytes());
    push_hashes(&mut v, deleted_sorted);
    v
}

/// Per-member `expire_all` result: `account_hex66 ‖ expiry ‖ updated hashes sorted…`.
pub fn expire_all_result_message<S: AsRef<str>>(
    account: &UserPubkey,
    expiry: u64,
    updated_sorted: &[S],
) -> Vec<u8> {
    delete_all_result_message(account, expiry, updated_sorted)
}

/// Per-member `expire` result: `account_hex66 ‖ expiries… ‖ requested… ‖ updated (sorted)… ‖
/// (hash ‖ expiry) of each unchanged, by hash`.
///
/// `expiries` is the single (capped) expiry tried when one was requested, else the applied
/// expiries in `updated` order — i.e. the reply's `expiry` field.
pub fn expire_result_message<S: AsRef<str>, T: AsRef<str>>(
    account: &UserPubkey,
    expiries: &[u64],
    requested: &[S],
    updated_sorted: &[T],
    unchanged: &BTreeMap<String, u64>,
) -> Vec<u8> {
    let mut v = account.to_hex().into_bytes();
    push_ints(&mut v, expiries);
    push_hashes(&mut v, requested);
    push_hashes(&mut v, updated_sorted);
    for (h, e) in unchanged {
        v.extend_from_slice(h.as_bytes());
        v.extend_from_slice(e.to_string().as_bytes());
    }
    v
}

/// Signs `msg` with an Ed25519 key (account, subaccount or snode key).
pub fn sign(key: &SigningKey, msg: &[u8]) -> Sig {
    Sig(key.sign(msg).to_bytes())
}

/// Verifies `sig` over `msg` with the Ed25519 public key `pk` (strict verification).
pub fn verify(pk: &[u8; 32], msg: &[u8], sig: &Sig) -> bool {
    match VerifyingKey::from_bytes(pk) {
        Ok(vk) => vk
            .verify_strict(msg, &Signature::from_bytes(&sig.0))
            .is_ok(),
        Err(_) => false,
    }
}

/// Checks a client request signature the way a snode does.
///
/// The verifying key is the account's 32 key bytes, except for `05` accounts that give
/// `pubkey_ed25519`: then that key must convert to the account's X25519 key and is used. With a
/// subaccount, the token must be for this prefix (or any-prefix), carry `required_flags`
/// ([`SubaccountToken`] bits) and be signed by that key; the request is then verified with the
/// token's key. Revocation is the caller's check.
pub fn verify_request_signature(
    method: &'static str,
    account: &UserPubkey,
    pubkey_ed25519: Option<&Ed25519Pubkey>,
    sub: &SubaccountAuth,
    required_flags: u8,
    sig: &Sig,
    msg: &[u8],
) -> Result<(), RpcError> {
    let fail = |reason: &'static str| RpcError::BadSignature { method, reason };
    let mut pk: [u8; 32] = *account.key();
    if let Some(ed) = pubkey_ed25519 {
        if account.prefix() != 0x05 {
            return Err(fail("pubkey_ed25519 is only permitted for 05 accounts"));
        }
        if crate::keys::ed25519_pk_to_x25519(&ed.0).ok().as_ref() != Some(account.key()) {
            return Err(fail(
                "pubkey_ed25519 does not convert to the account's X25519 key",
            ));
        }
        pk = ed.0;
    }
    if let Some((token, token_sig)) = sub.pair().map_err(fail)? {
        check_token(account, token, required_flags).map_err(fail)?;
        if !verify(&pk, &token.0, token_sig) {
            return Err(fail("subaccount token signature is invalid"));
        }
        pk = *token.pubkey();
    }
    if verify(&pk, msg, sig) {
        Ok(())
    } else {
        Err(fail("signature verification failed"))
    }
}

fn check_token(
    account: &UserPubkey,
    token: &SubaccountToken,
    required: u8,
) -> Result<(), &'static str> {
    if token.flags() & SubaccountToken::ANY_PREFIX == 0 && token.prefix() != account.prefix() {
        return Err("subaccount token is for another account prefix");
    }
    if token.flags() & required != required {
        return Err("subaccount token lacks the required permission");
    }
    Ok(())
}

impl Request {
    /// Checks the request's signature as a snode would (not its timestamp: that needs the clock,
    /// see [`super::check_timestamp`]). Unsigned methods and public-inbox stores pass; a missing
    /// required signature fails. A batch checks every subrequest.
    pub fn verify_signature(&self) -> Result<(), RpcError> {
        use SubaccountToken as T;
        match self {
            Request::Info | Request::GetSwarm(_) | Request::OxendRequest(_) => Ok(()),
            Request::RevokeSubaccount(p) => {
                // The account key itself: a subaccount may not revoke.
                let msg = revoke_subaccount_message(p.timestamp, &p.revoke.0);
                let (ed, none) = (p.pubkey_ed25519.as_ref(), &SubaccountAuth::default());
                let m = "revoke_subaccount";
                verify_request_signature(m, &p.pubkey, ed, none, 0, &p.signature, &msg)
            }
            Request::UnrevokeSubaccount(p) => {
                let msg = unrevoke_subaccount_message(p.timestamp, &p.unrevoke.0);
                let (ed, none) = (p.pubkey_ed25519.as_ref(), &SubaccountAuth::default());
                let m = "unrevoke_subaccount";
                verify_request_signature(m, &p.pubkey, ed, none, 0, &p.signature, &msg)
            }
            Request::Store(p) => {
                let Some(sig) = &p.signature else {
                    return if store_requires_auth(p.namespace) {
                        Err(RpcError::BadSignature {
                            method: "store",
                            reason: "signature required for this namespace",
                        })
                    } else {
                        Ok(())
                    };
                };
                if !store_requires_auth(p.namespace) {
                    return Ok(());
                }
                let mut flags = T::WRITE;
                if super::is_public_outbox(p.namespace) {
                    flags |= T::DELETE;
                }
                let msg = store_message(p.namespace, p.sig_timestamp_ms());
                let ed = p.pubkey_ed25519.as_ref();
                verify_request_signature("store", &p.pubkey, ed, &p.sub, flags, sig, &msg)
            }
            Request::Retrieve(p) => {
                if !p.is_signed() && !retrieve_requires_auth(p.namespace) {
                    return Ok(());
                }
                let (Some(sig), Some(ts)) = (&p.signature, p.timestamp) else {
                    return Err(RpcError::BadSignature {
                        method: "retrieve",
                        reason: "request signature required",
                    });
                };
                let msg = retrieve_message(p.namespace, ts);
                let ed = p.pubkey_ed25519.as_ref();
                verify_request_signature("retrieve", &p.pubkey, ed, &p.sub, T::READ, sig, &msg)
            }
            Request::Delete(p) => {
                let msg = delete_message(&p.messages.0);
                let ed = p.pubkey_ed25519.as_ref();
                let sig = &p.signature;
                verify_request_signature("delete", &p.pubkey, ed, &p.sub, T::DELETE, sig, &msg)
            }
            Request::DeleteAll(p) => {
                let msg = delete_all_message(p.namespace, p.timestamp);
                let (ed, sig) = (p.pubkey_ed25519.as_ref(), &p.signature);
                verify_request_signature("delete_all", &p.pubkey, ed, &p.sub, T::DELETE, sig, &msg)
            }
            Request::DeleteBefore(p) => {
                let msg = delete_before_message(p.namespace, p.before);
                let (ed, sig) = (p.pubkey_ed25519.as_ref(), &p.signature);
                let m = "delete_before";
                verify_request_signature(m, &p.pubkey, ed, &p.sub, T::DELETE, sig, &msg)
            }
            Request::Expire(p) => {
                let msg = expire_message(p.mode(), &p.expiry.0, &p.messages.0);
                let (ed, sig) = (p.pubkey_ed25519.as_ref(), &p.signature);
                verify_request_signature("expire", &p.pubkey, ed, &p.sub, T::WRITE, sig, &msg)
            }
            Request::ExpireAll(p) => {
                let msg = expire_all_message(p.namespace, p.expiry);
                let (ed, sig) = (p.pubkey_ed25519.as_ref(), &p.signature);
                verify_request_signature("expire_all", &p.pubkey, ed, &p.sub, T::DELETE, sig, &msg)
            }
            Request::GetExpiries(p) => {
                let msg = get_expiries_message(p.timestamp, &p.messages.0);
                let (ed, sig) = (p.pubkey_ed25519.as_ref(), &p.signature);
                let m = "get_expiries";
                verify_request_signature(m, &p.pubkey, ed, &p.sub, T::READ, sig, &msg)
            }
            Request::Batch(subs) | Request::Sequence(subs) => {
                subs.iter().try_for_each(Request::verify_signature)
            }
        }
    }
}
