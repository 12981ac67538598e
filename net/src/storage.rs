//! Typed storage operations on an account's swarm: what to ask ([`Op`]), how it is signed and
//! written as a storage-RPC request, and what a successful reply means ([`OpOutcome`]), with
//! every swarm member's signature checked.
//!
//! [`NetClient`](crate::NetClient) sends one op as one request, or several as a `batch` or
//! `sequence` (network.md §4.5), through a 3-hop path.

use session_proto::storage_rpc::sign::{
    delete_message, delete_result_message, expire_message, expire_result_message, retrieve_message,
    store_message, store_result_message, verify,
};
use session_proto::storage_rpc::{
    is_public_inbox, message_hash, Base64Bytes, DeleteParams, DeleteResult, ExpireMode,
    ExpireParams, ExpireResult, NodeResult, OneOrMany, Request, RetrieveParams, RetrieveReply, Sig,
    StoreParams, StoreResult, SwarmResults, UserPubkey,
};

use super::auth::Auth;
use super::err::NetError;
use super::snode::Snode;

/// One storage operation on an account's swarm.
///
/// Namespaces are the snode's (network.md §4.3): stores to public inboxes (ns % 10 == 0) need
/// no signature, everything else is signed with the request's [`Auth`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `store`: keep `data` for `ttl_ms` in `namespace`.
    Store {
        /// Namespace.
        namespace: i16,
        /// The message bytes (at most 76,800).
        data: Vec<u8>,
        /// Time to live, ms.
        ttl_ms: u64,
    },
    /// `retrieve`: the messages of `namespace` stored after `last_hash` (all without one).
    Retrieve {
        /// Namespace.
        namespace: i16,
        /// Where the previous retrieve from the same member ended.
        last_hash: Option<String>,
    },
    /// `delete`: remove messages by hash (any namespace of the account).
    Delete {
        /// Message hashes.
        hashes: Vec<String>,
    },
    /// `expire`: give messages a new expiry.
    Expire {
        /// Message hashes.
        hashes: Vec<String>,
        /// The new expiry, ms since the Unix epoch.
        expiry_ms: u64,
        /// Set, only shorten, or only extend.
        mode: ExpireMode,
    },
}

/// What a successful `store` achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOutcome {
    /// The message hash (checked against our own computation).
    pub hash: String,
    /// Swarm members whose signed result we verified.
    pub stored_on: usize,
    /// Swarm members that reported a failure or an unverifiable result.
    pub failed_on: usize,
    /// The expiry the entry node reported, ms.
    pub expiry_ms: u64,
}

/// What a successful `delete` achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// Hashes some member deleted (verified), sorted, no repeats.
    pub deleted: Vec<String>,
    /// Members whose signed result we verified.
    pub confirmed_by: usize,
    /// Members that failed or whose result did not verify.
    pub failed_on: usize,
}

/// What a successful `expire` achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpireOutcome {
    /// Hashes some member updated (verified), sorted, no repeats.
    pub updated: Vec<String>,
    /// Members whose signed result we verified.
    pub confirmed_by: usize,
    /// Members that failed or whose result did not verify.
    pub failed_on: usize,
}

/// The result of one [`Op`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpOutcome {
    /// From [`Op::Store`].
    Stored(StoreOutcome),
    /// From [`Op::Retrieve`]; every message's hash matches its data.
    Retrieved(RetrieveReply),
    /// From [`Op::Delete`].
    Deleted(DeleteOutcome),
    /// From [`Op::Expire`].
    Expired(ExpireOutcome),
}

impl Op {
    /// The storage-RPC request for `account`, signed with `auth` at network time `ts` (ms).
    pub fn to_request(
        &self,
        account: &UserPubkey,
        auth: &Auth,
        ts: u64,
    ) -> Result<Request, NetError> {
        let needs = |what: &str| NetError::BadRequest {
            reason: format!("{what} needs a signature (Auth::None given)"),
        };
        Ok(match self {
            Op::Store {
                namespace,
                data,
                ttl_ms,
            } => {
                let s = if is_public_inbox(*namespace) {
                    Default::default()
                } else {
                    auth.sign_for(account, &store_message(*namespace, ts))
                };
                Request::Store(StoreParams {
                    pubkey: *account,
                    namespace: *namespace,
                    timestamp: ts,
                    ttl: Some(*ttl_ms),
                    expiry: None,
                    data: Base64Bytes(data.clone()),
                    signature: s.signature,
                    sig_timestamp: None,
                    pubkey_ed25519: s.pubkey_ed25519,
                    sub: s.sub,
                })
            }
            Op::Retrieve {
                namespace,
                last_hash,
            } => {
                let s = auth.sign_for(account, &retrieve_message(*namespace, ts));
                Request::Retrieve(RetrieveParams {
                    pubkey: *account,
                    namespace: *namespace,
                    last_hash: last_hash.clone(),
                    max_count: None,
                    max_size: None,
                    timestamp: s.signature.is_some().then_some(ts),
                    signature: s.signature,
                    pubkey_ed25519: s.pubkey_ed25519,
                    sub: s.sub,
                })
            }
            Op::Delete { hashes } => {
                let s = auth.sign_for(account, &delete_message(hashes));
                Request::Delete(DeleteParams {
                    pubkey: *account,
                    messages: OneOrMany(hashes.clone()),
                    required: false,
                    signature: s.signature.ok_or_else(|| needs("delete"))?,
                    pubkey_ed25519: s.pubkey_ed25519,
                    sub: s.sub,
                })
            }
            Op::Expire {
                hashes,
                expiry_ms,
                mode,
            } => {
                let s = auth.sign_for(account, &expire_message(*mode, &[*expiry_ms], hashes));
                Request::Expire(ExpireParams {
                    pubkey: *account,
                    messages: OneOrMany(hashes.clone()),
                    expiry: OneOrMany(vec![*expiry_ms]),
                    shorten: *mode == ExpireMode::Shorten,
                    extend: *mode == ExpireMode::Extend,
                    signature: s.signature.ok_or_else(|| needs("expire"))?,
                    pubkey_ed25519: s.pubkey_ed25519,
                    sub: s.sub,
                })
            }
        })
    }

    /// Judges a 2xx reply body from `entry` (the snode that answered) for `account`. An
    /// unusable body is an error naming `entry` (the caller strikes it).
    pub(crate) fn outcome(
        &self,
        account: &UserPubkey,
        entry: &Snode,
        body: &[u8],
    ) -> Result<OpOutcome, String> {
        match self {
            Op::Store {
                namespace, data, ..
            } => store_outcome(account, *namespace, data, entry, body).map(OpOutcome::Stored),
            Op::Retrieve { namespace, .. } => {
                retrieve_outcome(account, *namespace, body).map(OpOutcome::Retrieved)
            }
            Op::Delete { hashes } => {
                let r: SwarmResults<DeleteResult> =
                    serde_json::from_slice(body).map_err(|e| format!("delete reply: {e}"))?;
                let (deleted, confirmed_by, failed_on) = tally(&r, |r| {
                    let msg = delete_result_message(account, hashes, &r.deleted);
                    (msg, r.signature, r.deleted.clone())
                });
                Ok(OpOutcome::Deleted(DeleteOutcome {
                    deleted,
                    confirmed_by,
                    failed_on,
                }))
            }
            Op::Expire { hashes, .. } => {
                let r: SwarmResults<ExpireResult> =
                    serde_json::from_slice(body).map_err(|e| format!("expire reply: {e}"))?;
                let (updated, confirmed_by, failed_on) = tally(&r, |r| {
                    let unchanged = r.unchanged.clone().unwrap_or_default();
                    let msg = expire_result_message(
                        account,
                        r.expiry.as_slice(),
                        hashes,
                        &r.updated,
                        &unchanged,
                    );
                    (msg, r.signature, r.updated.clone())
                });
                Ok(OpOutcome::Expired(ExpireOutcome {
                    updated,
                    confirmed_by,
                    failed_on,
                }))
            }
        }
    }
}

/// Counts members whose result verifies (signature by the member's own key over `signed`)
/// and collects the hashes they name.
fn tally<T>(
    r: &SwarmResults<T>,
    signed: impl Fn(&T) -> (Vec<u8>, Sig, Vec<String>),
) -> (Vec<String>, usize, usize) {
    let mut hashes = Vec::new();
    let (mut ok, mut failed) = (0, 0);
    for (member, result) in &r.swarm {
        let verified = match result {
            NodeResult::Ok(v) => {
                let (msg, sig, names) = signed(v);
                member_key(member)
                    .filter(|k| verify(k, &msg, &sig))
                    .map(|_| names)
            }
            NodeResult::Failed(_) => None,
        };
        match verified {
            Some(names) => {
                ok += 1;
                hashes.extend(names);
            }
            None => failed += 1,
        }
    }
    hashes.sort();
    hashes.dedup();
    (hashes, ok, failed)
}

fn member_key(member_hex: &str) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(member_hex, &mut key).ok().map(|_| key)
}

/// Whether a store result is signed by the member its key names.
pub(crate) fn member_signed(member_hex: &str, r: &StoreResult) -> bool {
    member_key(member_hex).is_some_and(|k| verify(&k, &store_result_message(&r.hash), &r.signature))
}

fn store_outcome(
    account: &UserPubkey,
    namespace: i16,
    data: &[u8],
    entry: &Snode,
    body: &[u8],
) -> Result<StoreOutcome, String> {
    let expected = message_hash(&account.0, namespace, data);
    let parsed: SwarmResults<StoreResult> =
        serde_json::from_slice(body).map_err(|e| format!("store reply: {e}"))?;
    let (mut stored_on, mut failed_on, mut expiry_ms) = (0, 0, 0);
    for (member, result) in &parsed.swarm {
        match result {
            NodeResult::Ok(r) if r.hash == expected && member_signed(member, r) => {
                stored_on += 1;
                if member == &entry.ed25519_hex() || expiry_ms == 0 {
                    expiry_ms = r.expiry;
                }
            }
            _ => failed_on += 1,
        }
    }
    if stored_on == 0 {
        return Err("no verifiable store result in the reply".into());
    }
    Ok(StoreOutcome {
        hash: expected,
        stored_on,
        failed_on,
        expiry_ms,
    })
}

fn retrieve_outcome(
    account: &UserPubkey,
    namespace: i16,
    body: &[u8],
) -> Result<RetrieveReply, String> {
    let reply: RetrieveReply =
        serde_json::from_slice(body).map_err(|e| format!("retrieve reply: {e}"))?;
    if let Some(m) = reply
        .messages
        .iter()
        .find(|m| m.hash != message_hash(&account.0, namespace, &m.data.0))
    {
        return Err(format!(
            "retrieved message hash {:.8}… does not match its data",
            m.hash
        ));
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use session_proto::storage_rpc::sign::sign;

    fn account() -> (SigningKey, UserPubkey) {
        let sk = SigningKey::from_bytes(&[7; 32]);
        let mut id = [0u8; 33];
        id[0] = 0x05;
        id[1..].copy_from_slice(&sk.verifying_key().to_montgomery().to_bytes());
        (sk, UserPubkey(id))
    }

    #[test]
    fn member_signature_checked() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let hash = "a".repeat(43);
        let good = StoreResult {
            hash: hash.clone(),
            signature: sign(&key, &store_result_message(&hash)),
            expiry: 1,
            already: false,
        };
        let member = hex::encode(key.verifying_key().to_bytes());
        assert!(member_signed(&member, &good));
        assert!(!member_signed(&hex::encode([1u8; 32]), &good));
        assert!(!member_signed("zz", &good));
        let forged = StoreResult {
            hash: "b".repeat(43),
            ..good
        };
        assert!(!member_signed(&member, &forged));
    }

    #[test]
    fn requests_verify_as_a_snode_checks_them() {
        let (sk, id) = account();
        let auth = Auth::Account(sk);
        let ops = [
            Op::Store {
                namespace: 3,
                data: b"x".to_vec(),
                ttl_ms: 60_000,
            },
            Op::Retrieve {
                namespace: -11,
                last_hash: None,
            },
            Op::Delete {
                hashes: vec!["h".repeat(43)],
            },
            Op::Expire {
                hashes: vec!["h".repeat(43)],
                expiry_ms: 1_700_000_000_000,
                mode: ExpireMode::Shorten,
            },
        ];
        for op in &ops {
            let r = op
                .to_request(&id, &auth, 1_700_000_000_000)
                .expect("builds");
            r.verify_signature().expect("a snode accepts the signature");
            let back = Request::from_json(&r.to_json()).expect("round trip");
            back.verify_signature().expect("still valid after JSON");
        }
        // Unsigned: a public-inbox store is fine, a delete cannot be built.
        let public = Op::Store {
            namespace: 0,
            data: b"x".to_vec(),
            ttl_ms: 60_000,
        };
        assert!(public.to_request(&id, &Auth::None, 1).is_ok());
        let e = ops[2]
            .to_request(&id, &Auth::None, 1)
            .expect_err("needs a signature");
        assert!(matches!(e, NetError::BadRequest { .. }));
    }

    #[test]
    fn bad_retrieve_bodies_are_errors() {
        let (_, id) = account();
        let op = Op::Retrieve {
            namespace: 0,
            last_hash: None,
        };
        let n = crate::snode::testing::node(1, 1);
        assert!(op.outcome(&id, &n, b"not json").is_err());
        let forged =
            br#"{"messages":[{"hash":"AAAA","timestamp":1,"expiration":2,"data":"eA=="}]}"#;
        assert!(op.outcome(&id, &n, forged).is_err());
        let empty = br#"{"messages":[],"more":false}"#;
        assert!(matches!(
            op.outcome(&id, &n, empty),
            Ok(OpOutcome::Retrieved(r)) if r.messages.is_empty()
        ));
    }
}
