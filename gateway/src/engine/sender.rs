//! The sender task: stores due outbox entries in their recipients' swarms, a few at a time;
//! records success, schedules retries with exponential backoff, gives up after the budget.
//! A message's sync copy (for the account's other devices) is an entry of its own, queued in
//! the message's transaction but held until the message is sent (the store releases it when it
//! records the message sent, drops it when the message fails), then sent to the identity's own
//! swarm the same way; its outcome records no event and is not counted as a message.
//!
//! Due entries bound for the same account are sent together: up to `outbox.batch_max` of them
//! (and at most [`BATCH_BYTES`] of messages) in one `batch` onion request, in queue order, each
//! store with its own result: one refused store is retried or failed alone.
//!
//! An entry leaves the outbox only in the transaction that records its outcome, so a crash
//! mid-send leaves it queued; the resend carries the same sealed bytes (same message hash), and
//! the storage servers store a message once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_proto::account_id::{AccountId, Prefix};
use session_proto::storage_rpc::UserPubkey;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Ctx;
use crate::config::OutboxConfig;
use crate::metrics::{DeliveryFailure, RequestKind};
use crate::rpc::now_ms;
use crate::store::OutboxEntry;
use session_net::{Auth, NetError, Op, OpOutcome};

/// Onion requests (single stores or batches) in flight at once.
pub const MAX_IN_FLIGHT: usize = 32;
/// Batch requests in flight at once to one account from one identity (when batching is on):
/// what is queued meanwhile waits for one of them and leaves in the next batch. Without this
/// bound a burst of Sends, each waking the sender, left one or two at a time in as many
/// requests as there were wake-ups, and batching saved little.
pub const PER_ACCOUNT_IN_FLIGHT: usize = 2;
/// Message bytes one batch request carries at most (before base64): well inside the request
/// size snodes accept, so one big batch does not become one slow, fragile request.
pub const BATCH_BYTES: usize = 512 * 1024;
/// The longest the sender sleeps without a wake-up (a safety net; Send wakes it).
const TICK: Duration = Duration::from_secs(30);
/// After a wake-up, how long the sender lets more Sends arrive before it reads the outbox: a
/// burst is read once and leaves in batches, instead of one outbox read per Send.
const COALESCE: Duration = Duration::from_millis(2);
/// Wait after a store read failure.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Backoff before retry number `retry` (1 = first): initial × 2^(retry−1), capped.
pub fn backoff_ms(cfg: &OutboxConfig, retry: u32) -> u64 {
    let factor = 1u64 << retry.saturating_sub(1).min(30);
    cfg.backoff_initial_ms
        .saturating_mul(factor)
        .min(cfg.backoff_max_ms)
}

/// The sender loop; returns when `stop` turns true.
pub async fn run(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut in_flight: HashSet<u64> = HashSet::new();
    // Batch requests in flight per `batch_key`.
    let mut per_account: HashMap<String, usize> = HashMap::new();
    let mut tasks: JoinSet<(Option<String>, Vec<u64>)> = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        while let Some(done) = tasks.try_join_next() {
            finish(&mut in_flight, &mut per_account, done);
        }
        let now = now_ms();
        let wait = match ctx.blocking(|s| s.outbox()).await {
            Ok(entries) => {
                let mut next: Option<u64> = None;
                let mut due = Vec::new();
                for e in entries {
                    if in_flight.contains(&e.id) {
                        continue;
                    }
                    if e.next_try_ms <= now {
                        due.push(e);
                    } else {
                        next = Some(next.map_or(e.next_try_ms, |n| n.min(e.next_try_ms)));
                    }
                }
                // Due entries left over when every slot is busy go out when a request ends
                // (its completion wakes this loop), not in a busy loop.
                for group in batches(due, ctx.outbox.batch_max) {
                    if tasks.len() >= MAX_IN_FLIGHT {
                        break;
                    }
                    let key = group
                        .first()
                        .filter(|_| ctx.outbox.batch_max > 1)
                        .and_then(batch_key);
                    if let Some(k) = &key {
                        let n = per_account.entry(k.clone()).or_default();
                        if *n >= PER_ACCOUNT_IN_FLIGHT {
                            continue;
                        }
                        *n += 1;
                    }
                    in_flight.extend(group.iter().map(|e| e.id));
                    let ctx = Arc::clone(&ctx);
                    tasks.spawn(async move { (key, send_group(ctx, group).await) });
                }
                next.map_or(TICK, |at| Duration::from_millis(at - now).min(TICK))
            }
            Err(e) => {
                tracing::warn!(cause = %e, "sender cannot read the outbox");
                STORE_RETRY
            }
        };
        tokio::select! {
            _ = stop.changed() => break,
            () = ctx.outbox_wake.notified() => tokio::time::sleep(COALESCE).await,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                finish(&mut in_flight, &mut per_account, done)
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
    // In-flight sends are abandoned: their entries stay in the outbox for the next run.
    tasks.shutdown().await;
}

fn finish(
    in_flight: &mut HashSet<u64>,
    per_account: &mut HashMap<String, usize>,
    done: Result<(Option<String>, Vec<u64>), tokio::task::JoinError>,
) {
    match done {
        Ok((key, ids)) => {
            for id in ids {
                in_flight.remove(&id);
            }
            if let Some(k) = key {
                if let Some(n) = per_account.get_mut(&k) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        per_account.remove(&k);
                    }
                }
            }
        }
        Err(e) => {
            // A panicked send: its id is unknown here, so forget all and re-read (an entry sent
            // twice is stored once by the swarm and finished once by the store).
            tracing::warn!(cause = %e, "a send task failed");
            in_flight.clear();
            per_account.clear();
        }
    }
}

/// The key [`batches`] groups an entry by (its identity and recipient); `None` for entries
/// that always go alone (a group's swarm).
fn batch_key(e: &OutboxEntry) -> Option<String> {
    (!e.recipient.starts_with("03")).then(|| format!("{}/{}", e.identity, e.recipient))
}

/// Due entries in requests: consecutive runs (in queue order) of one identity's entries for the
/// same account, at most `max` entries and [`BATCH_BYTES`] of messages each (an entry bigger than
/// that goes alone). Entries for a group's swarm always go alone: they need the identity's group
/// auth, which [`attempt`] adds. Keying by identity keeps path isolation (one identity's paths
/// never carry another's stores).
pub fn batches(due: Vec<OutboxEntry>, max: usize) -> Vec<Vec<OutboxEntry>> {
    let max = max.clamp(1, session_proto::storage_rpc::BATCH_MAX);
    let mut open: Vec<(String, usize, Vec<OutboxEntry>)> = Vec::new();
    let mut out = Vec::new();
    for e in due {
        let Some(key) = batch_key(&e) else {
            out.push(vec![e]);
            continue;
        };
        let len = e.payload.len();
        let slot = open.iter().position(|(to, bytes, group)| {
            *to == key && group.len() < max && bytes + len <= BATCH_BYTES
        });
        match slot {
            Some(i) => {
                open[i].1 += len;
                open[i].2.push(e);
            }
            None => {
                // A full group for this account is closed; the new one starts after it.
                if let Some(i) = open.iter().position(|(to, ..)| *to == key) {
                    out.push(open.remove(i).2);
                }
                open.push((key, len, vec![e]));
            }
        }
    }
    out.extend(open.into_iter().map(|(.., group)| group));
    out
}

/// Sends a group from [`batches`]: one entry alone, several in one `batch` request; each
/// entry's outcome recorded on its own. Returns the entries' ids.
async fn send_group(ctx: Arc<Ctx>, group: Vec<OutboxEntry>) -> Vec<u64> {
    let ids = group.iter().map(|e| e.id).collect();
    if group.len() == 1 {
        for e in group {
            send_one(Arc::clone(&ctx), e).await;
        }
        return ids;
    }
    let results = attempt_batch(&ctx, &group).await;
    // Recorded in queue order; the store shares one commit among them (group commit).
    let mut records = JoinSet::new();
    for (e, result) in group.into_iter().zip(results) {
        records.spawn(record(Arc::clone(&ctx), e, result));
    }
    while records.join_next().await.is_some() {}
    ids
}

/// One `batch` request with every entry's store; a result per entry, in order. A failure of
/// the request as a whole is every entry's.
async fn attempt_batch(ctx: &Ctx, group: &[OutboxEntry]) -> Vec<Result<String, Failure>> {
    let mut ops = Vec::with_capacity(group.len());
    let mut bad: Vec<Option<Failure>> = Vec::with_capacity(group.len());
    let mut account = None;
    for e in group {
        match recipient_key(e) {
            Ok((a, ns)) => {
                account = Some(a);
                ops.push(Op::Store {
                    namespace: ns,
                    data: e.payload.clone(),
                    ttl_ms: e.ttl_ms,
                });
                bad.push(None);
            }
            Err(f) => bad.push(Some(f)),
        }
    }
    let Some(account) = account else {
        return bad.into_iter().flatten().map(Err).collect();
    };
    let started = Instant::now();
    let identity = group.first().map_or(0, |e| e.identity);
    let sent = ctx
        .net
        .isolated(identity)
        .batch(&account, &Auth::None, &ops)
        .await;
    ctx.metrics
        .onion_request(RequestKind::Store, ctx.hops(), started, &sent);
    let mut results = match sent {
        Ok(results) => results.into_iter(),
        Err(err) => {
            let failure = || failure_of(&err);
            return bad
                .into_iter()
                .map(|b| Err(b.unwrap_or_else(failure)))
                .collect();
        }
    };
    bad.into_iter()
        .map(|b| match b {
            Some(f) => Err(f),
            None => match results.next() {
                Some(Ok(OpOutcome::Stored(s))) => Ok(s.hash),
                Some(Ok(_)) => Err(Failure::Retry(
                    "the snode answered a store with something else".into(),
                )),
                Some(Err(err)) => Err(failure_of(&err)),
                None => Err(Failure::Retry(
                    "no result for this store in the batch reply".into(),
                )),
            },
        })
        .collect()
}

fn failure_of(err: &NetError) -> Failure {
    match err {
        NetError::Shutdown => Failure::Stopping,
        err if err.is_retryable() => Failure::Retry(err.to_string()),
        err => Failure::Permanent(err.to_string()),
    }
}

/// Why one attempt failed: retry later or give up.
enum Failure {
    Retry(String),
    Permanent(String),
    /// The client is shutting down: leave the entry as it is.
    Stopping,
}

fn recipient_key(e: &OutboxEntry) -> Result<(UserPubkey, i16), Failure> {
    let id: AccountId = e
        .recipient
        .parse()
        .map_err(|err| Failure::Permanent(format!("bad recipient in the outbox: {err}")))?;
    let ns = i16::try_from(e.namespace)
        .map_err(|_| Failure::Permanent(format!("namespace {} out of range", e.namespace)))?;
    Ok((UserPubkey(*id.as_bytes()), ns))
}

async fn attempt(ctx: &Ctx, e: &OutboxEntry) -> Result<String, Failure> {
    let (account, ns) = recipient_key(e)?;
    // Recipients' inboxes are public (ns % 10 == 0): no signature. A group's messages
    // namespace takes the identity's group auth (admin key or subaccount).
    let auth = if account.0[0] == Prefix::Group.byte() {
        let (identity, group) = (e.identity, e.recipient.clone());
        ctx.blocking(move |s| {
            super::groups::auth_for(s, identity, &group).map_err(|e| {
                crate::store::StoreError::BadRecord {
                    what: "group",
                    detail: e.to_string(),
                }
            })
        })
        .await
        .map_err(|e| Failure::Permanent(e.to_string()))?
    } else {
        Auth::None
    };
    let started = Instant::now();
    let sent = ctx
        .net
        .isolated(e.identity)
        .store(&account, ns, &e.payload, e.ttl_ms, &auth)
        .await;
    ctx.metrics
        .onion_request(RequestKind::Store, ctx.hops(), started, &sent);
    match sent {
        Ok(outcome) => Ok(outcome.hash),
        Err(err) => Err(failure_of(&err)),
    }
}

/// One attempt for one entry, and its outcome recorded.
async fn send_one(ctx: Arc<Ctx>, e: OutboxEntry) {
    let result = attempt(&ctx, &e).await;
    record(ctx, e, result).await;
}

/// Records one attempt's outcome: sent, a retry later, or failed.
async fn record(ctx: Arc<Ctx>, e: OutboxEntry, result: Result<String, Failure>) {
    let id = e.id;
    let now = now_ms();
    let max = ctx.outbox.max_attempts;
    let recorded = match result {
        Ok(hash) => {
            tracing::debug!(message_id = %e.message_id, attempts = e.attempts + 1, sync_copy = e.sync_copy, "message sent");
            if !e.sync_copy {
                ctx.metrics.message_sent();
            }
            // A recipient this daemon also serves polls now rather than at its next interval;
            // the sender's poller stays at the active interval for the reply.
            if !e.sync_copy {
                ctx.poke_account(&e.recipient);
            }
            let r = ctx
                .blocking(move |s| s.outbox_sent(id, &hash, now).map(|_| ()))
                .await;
            ctx.poke(e.identity);
            r
        }
        Err(Failure::Stopping) => Ok(()),
        Err(Failure::Retry(reason)) if e.attempts.saturating_add(1) < max => {
            let retry = e.attempts.saturating_add(1);
            let at = now.saturating_add(backoff_ms(&ctx.outbox, retry));
            tracing::debug!(message_id = %e.message_id, retry, cause = %reason, "send failed; will retry");
            ctx.blocking(move |s| s.outbox_retry(id, at, &reason).map(|_| ()))
                .await
        }
        Err(Failure::Retry(reason)) | Err(Failure::Permanent(reason)) if e.sync_copy => {
            // The message itself has its own entry; only the account's other devices miss it.
            tracing::warn!(message_id = %e.message_id, cause = %reason, "a sync copy failed");
            ctx.blocking(move |s| s.outbox_failed(id, &reason, now).map(|_| ()))
                .await
        }
        Err(Failure::Retry(reason)) | Err(Failure::Permanent(reason)) => {
            tracing::warn!(message_id = %e.message_id, cause = %reason, "message failed");
            ctx.metrics.message_failed(DeliveryFailure {
                at_ms: now,
                identity: e.identity,
                message_id: e.message_id.clone(),
                reason: reason.clone(),
            });
            ctx.blocking(move |s| s.outbox_failed(id, &reason, now).map(|_| ()))
                .await
        }
    };
    if let Err(err) = recorded {
        // The entry stays as it was; the next round tries it again.
        tracing::warn!(message_id = %e.message_id, cause = %err, "cannot record a send outcome");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, to: u8, len: usize) -> OutboxEntry {
        OutboxEntry {
            id,
            identity: 1,
            message_id: format!("{id:032x}"),
            recipient: format!("05{}", hex::encode([to; 32])),
            payload: vec![0; len],
            namespace: 0,
            sent_at_ms: 1,
            ttl_ms: 1_000,
            attempts: 0,
            next_try_ms: 0,
            last_error: None,
            event_seq: id,
            sync_copy: false,
            held_copy: None,
            control: false,
        }
    }

    fn ids(groups: &[Vec<OutboxEntry>]) -> Vec<Vec<u64>> {
        groups
            .iter()
            .map(|g| g.iter().map(|e| e.id).collect())
            .collect()
    }

    #[test]
    fn due_entries_are_grouped_per_account_in_order_within_the_limits() {
        // Two accounts interleaved: one group each, queue order kept inside.
        let due = vec![
            entry(1, 1, 10),
            entry(2, 2, 10),
            entry(3, 1, 10),
            entry(4, 2, 10),
        ];
        assert_eq!(ids(&batches(due, 20)), [vec![1, 3], vec![2, 4]]);
        // At most `max` per group; the next group for the account follows the full one.
        let due: Vec<_> = (1..=45).map(|i| entry(i, 1, 10)).collect();
        let groups = batches(due, 20);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [20, 20, 5]);
        assert_eq!(groups[1][0].id, 21);
        // 1 sends each alone; a `max` above the protocol's limit is cut to it.
        assert_eq!(batches(vec![entry(1, 1, 1), entry(2, 1, 1)], 1).len(), 2);
        let due: Vec<_> = (1..=25).map(|i| entry(i, 1, 1)).collect();
        assert_eq!(batches(due, 100)[0].len(), 20);
        // The byte budget: two big messages do not share a request; an oversized one goes alone.
        let due = vec![
            entry(1, 1, BATCH_BYTES / 2 + 1),
            entry(2, 1, BATCH_BYTES / 2 + 1),
            entry(3, 1, BATCH_BYTES * 2),
            entry(4, 1, 10),
        ];
        assert_eq!(ids(&batches(due, 20)), [vec![1], vec![2], vec![3], vec![4]]);
        assert!(batches(Vec::new(), 20).is_empty());
    }

    #[test]
    fn group_swarm_entries_and_other_identities_are_never_batched_together() {
        let mut group_entry = entry(3, 1, 1);
        group_entry.recipient = format!("03{}", hex::encode([1; 32]));
        let mut group_entry2 = entry(4, 1, 1);
        group_entry2.recipient = group_entry.recipient.clone();
        let mut other_identity = entry(2, 1, 1);
        other_identity.identity = 2;
        let due = vec![
            entry(1, 1, 1),
            other_identity,
            group_entry,
            group_entry2,
            entry(5, 1, 1),
        ];
        let got = ids(&batches(due, 20));
        assert!(got.contains(&vec![1, 5]), "{got:?}");
        assert!(
            got.contains(&vec![2]) && got.contains(&vec![3]) && got.contains(&vec![4]),
            "{got:?}"
        );
        assert_eq!(got.len(), 4, "{got:?}");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let cfg = OutboxConfig {
            backoff_initial_ms: 100,
            backoff_max_ms: 1_000,
            ..OutboxConfig::default()
        };
        assert_eq!(backoff_ms(&cfg, 1), 100);
        assert_eq!(backoff_ms(&cfg, 2), 200);
        assert_eq!(backoff_ms(&cfg, 4), 800);
        assert_eq!(backoff_ms(&cfg, 5), 1_000);
        assert_eq!(backoff_ms(&cfg, u32::MAX), 1_000);
    }
}
