//! The `expiry` task: enforces disappearing messages and carries out the store's swarm chores.
//!
//! Each round it purges the messages whose timers ran out (they leave the log, a `Removed`
//! event says so), then works through the pending chores on the identity's own swarm: setting
//! a message's expiry when its timer starts (the swarm drops it then even if the daemon is
//! down) and deleting a message that was unsent or purged. A chore that fails for a retryable
//! reason stays for the next round; one the swarm refuses (or for an identity that is gone) is
//! dropped with a debug line. It sleeps until the next purge is due, at most [`TICK`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use session_net::{Auth, NetError};
use session_proto::keys::IdentityKeys;
use session_proto::storage_rpc::{ExpireMode, UserPubkey};
use tokio::sync::watch;

use super::Ctx;
use crate::rpc::now_ms;
use crate::store::{Chore, IdentityId, SwarmChore};

/// The longest the task sleeps between rounds: new timers and chores are picked up within it.
pub const TICK: Duration = Duration::from_secs(1);
/// Chores tried per round (the rest wait for the next).
const CHORES_PER_ROUND: usize = 64;

/// The expiry loop; returns when `stop` turns true.
pub async fn run(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut keys: HashMap<IdentityId, IdentityKeys> = HashMap::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let now = now_ms();
        match ctx.blocking(move |s| s.purge_expired(now)).await {
            Ok(done) if !done.is_empty() => {
                tracing::debug!(purged = done.len(), "disappearing messages purged");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(cause = %e, "cannot purge expired messages"),
        }
        match ctx.blocking(|s| s.swarm_chores()).await {
            Ok(chores) => {
                for chore in chores.into_iter().take(CHORES_PER_ROUND) {
                    if *stop.borrow() {
                        break;
                    }
                    do_chore(&ctx, &mut keys, chore).await;
                }
            }
            Err(e) => tracing::warn!(cause = %e, "cannot read swarm chores"),
        }
        let wait = match ctx.blocking(|s| s.next_purge()).await {
            Ok(Some(at)) => Duration::from_millis(at.saturating_sub(now_ms())).min(TICK),
            _ => TICK,
        };
        tokio::select! {
            _ = stop.changed() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

async fn do_chore(ctx: &Ctx, keys: &mut HashMap<IdentityId, IdentityKeys>, chore: SwarmChore) {
    let id = chore.identity;
    if let std::collections::hash_map::Entry::Vacant(slot) = keys.entry(id) {
        let loaded = ctx
            .blocking(move |s| {
                let record = s.identity_by_id(id)?;
                s.identity_seed(&record.name)
            })
            .await;
        match loaded {
            Ok(seed) => {
                slot.insert(IdentityKeys::from_seed(&seed));
            }
            Err(e) => {
                tracing::debug!(identity = id, cause = %e, "dropping a chore of a gone identity");
                let _ = ctx.blocking(move |s| s.chore_done(&chore)).await;
                return;
            }
        }
    }
    let Some(k) = keys.get(&id) else { return };
    let account = UserPubkey(*k.account_id().as_bytes());
    let auth = Auth::Account(k.signing_key().clone());
    let hashes = [chore.hash.clone()];
    let result: Result<(), NetError> = match chore.chore {
        Chore::Expire { at_ms } => ctx
            .net
            .expire(&account, &hashes, at_ms, ExpireMode::Shorten, &auth)
            .await
            .map(|_| ()),
        Chore::Delete => ctx.net.delete(&account, &hashes, &auth).await.map(|_| ()),
    };
    match result {
        Ok(()) => {}
        Err(NetError::Shutdown) => return,
        Err(e) if e.is_retryable() => {
            tracing::debug!(identity = id, cause = %e, "swarm chore failed; will retry");
            return;
        }
        Err(e) => tracing::debug!(identity = id, cause = %e, "swarm chore refused; dropped"),
    }
    if let Err(e) = ctx.blocking(move |s| s.chore_done(&chore)).await {
        tracing::warn!(cause = %e, "cannot record a swarm chore done");
    }
}
