//! The sender task: stores due outbox entries in their recipients' swarms, a few at a time;
//! records success, schedules retries with exponential backoff, gives up after the budget.
//! A message's sync copy (for the account's other devices) is an entry of its own, queued in
//! the message's transaction but held until the message is sent (the store releases it when it
//! records the message sent, drops it when the message fails), then sent to the identity's own
//! swarm the same way; its outcome records no event and is not counted as a message.
//!
//! An entry leaves the outbox only in the transaction that records its outcome, so a crash
//! mid-send leaves it queued; the resend carries the same sealed bytes (same message hash), and
//! the storage servers store a message once.

use std::collections::HashSet;
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
use session_net::{Auth, NetError};

/// Sends in flight at once.
pub const MAX_IN_FLIGHT: usize = 32;
/// The longest the sender sleeps without a wake-up (a safety net; Send wakes it).
const TICK: Duration = Duration::from_secs(30);
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
    let mut tasks: JoinSet<u64> = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        while let Some(done) = tasks.try_join_next() {
            finish(&mut in_flight, done);
        }
        let now = now_ms();
        let wait = match ctx.blocking(|s| s.outbox()).await {
            Ok(entries) => {
                let mut next: Option<u64> = None;
                for e in entries {
                    if in_flight.contains(&e.id) {
                        continue;
                    }
                    if e.next_try_ms <= now && in_flight.len() < MAX_IN_FLIGHT {
                        in_flight.insert(e.id);
                        tasks.spawn(send_one(Arc::clone(&ctx), e));
                    } else {
                        let at = e.next_try_ms.max(now);
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
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
            () = ctx.outbox_wake.notified() => {}
            Some(done) = tasks.join_next(), if !tasks.is_empty() => finish(&mut in_flight, done),
            () = tokio::time::sleep(wait) => {}
        }
    }
    // In-flight sends are abandoned: their entries stay in the outbox for the next run.
    tasks.shutdown().await;
}

fn finish(in_flight: &mut HashSet<u64>, done: Result<u64, tokio::task::JoinError>) {
    match done {
        Ok(id) => {
            in_flight.remove(&id);
        }
        Err(e) => {
            // A panicked send: its id is unknown here, so forget all and re-read (an entry sent
            // twice is stored once by the swarm and finished once by the store).
            tracing::warn!(cause = %e, "a send task failed");
            in_flight.clear();
        }
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
        .store(&account, ns, &e.payload, e.ttl_ms, &auth)
        .await;
    ctx.metrics
        .onion_request(RequestKind::Store, ctx.hops(), started, &sent);
    match sent {
        Ok(outcome) => Ok(outcome.hash),
        Err(NetError::Shutdown) => Err(Failure::Stopping),
        Err(err) if err.is_retryable() => Err(Failure::Retry(err.to_string())),
        Err(err) => Err(Failure::Permanent(err.to_string())),
    }
}

/// One attempt for one entry, and its outcome recorded. Returns the entry's id.
async fn send_one(ctx: Arc<Ctx>, e: OutboxEntry) -> u64 {
    let id = e.id;
    let result = attempt(&ctx, &e).await;
    let now = now_ms();
    let max = ctx.outbox.max_attempts;
    let recorded = match result {
        Ok(hash) => {
            tracing::debug!(message_id = %e.message_id, attempts = e.attempts + 1, sync_copy = e.sync_copy, "message sent");
            if !e.sync_copy {
                ctx.metrics.message_sent();
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
    id
}

#[cfg(test)]
mod tests {
    use super::*;

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
