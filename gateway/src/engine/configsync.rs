//! Config sync, pull side: every poll of an identity reads its config namespaces
//! (UserProfile 2, Contacts 3, ConvoInfoVolatile 4, UserGroups 5) in the same batch request as
//! its messages (session-net's member-sticky `poll`), merges what arrived into the identity's configs (session-proto `config::Config`), saves their
//! dumps, and applies what the account's other devices set: the display name, the contacts'
//! nicknames and the community rooms joined (UserGroups).
//!
//! Config messages are handled before namespace 0, as desktop does. Nothing is pushed from
//! here: a restored identity only reads until the push side exists, so it can never overwrite
//! the account's configs with an empty one. Bad config messages (undecryptable, unparseable,
//! unknown types, incomplete multipart sets) are skipped with a debug line (hashes and reasons
//! only) and never stop the poller.

use session_proto::config::object::USER_CONFIGS;
use session_proto::config::{contacts, user_groups, user_profile, Config, ConfigKeys};
use session_proto::keys::IdentityKeys;

use super::poller::PollError;
use super::Ctx;
use crate::rpc::now_ms;
use crate::store::{IdentityId, IdentityRecord, StoreError};
use session_net::Poll;

/// One identity's configs and where their polls stand on the current swarm member.
#[derive(Debug)]
pub struct Configs {
    configs: Vec<Config>,
    /// Whether the saved state was applied once since start.
    applied: bool,
}

impl Configs {
    /// The identity's configs as last saved (fresh ones where nothing was saved; a damaged
    /// dump is logged and started over, the swarm still has the messages).
    pub fn load(
        store: &crate::store::Store,
        id: IdentityId,
        keys: &IdentityKeys,
    ) -> Result<Configs, StoreError> {
        let now = now_ms();
        let mut configs = Vec::new();
        for ty in USER_CONFIGS {
            let c = match store.config_dump(id, i32::from(ty.namespace))? {
                Some(d) => Config::load(ty, ConfigKeys::user(keys), &d, now).unwrap_or_else(|e| {
                    tracing::warn!(namespace = ty.namespace, cause = %e, "config dump unreadable, starting over");
                    Config::new(ty, ConfigKeys::user(keys))
                }),
                None => Config::new(ty, ConfigKeys::user(keys)),
            };
            configs.push(c);
        }
        Ok(Configs {
            configs,
            applied: false,
        })
    }

    /// The config of `namespace`.
    pub fn get(&self, namespace: i16) -> Option<&Config> {
        self.configs
            .iter()
            .find(|c| c.config_type().namespace == namespace)
    }
}

/// Merges the config namespaces of one batch poll (messages not handed out before), saves
/// changed dumps and applies changes. A namespace that failed in this poll is skipped (the
/// mailbox does not move past it, so the next poll asks again). Returns how many config
/// messages were new.
pub(super) async fn absorb(
    ctx: &Ctx,
    record: &IdentityRecord,
    state: &mut Configs,
    poll: &Poll,
) -> Result<usize, PollError> {
    let id = record.id;
    let mut fresh = 0;
    let mut changed = !state.applied;
    for part in &poll.namespaces {
        let ns = part.namespace;
        let Some(config) = state
            .configs
            .iter_mut()
            .find(|c| c.config_type().namespace == ns)
        else {
            continue;
        };
        let fetched = match &part.result {
            Ok(f) if !f.messages.is_empty() => f,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(identity = id, namespace = ns, cause = %e, "config namespace not read this poll");
                continue;
            }
        };
        // Hashes were checked against the data by session-net.
        let msgs: Vec<(&str, &[u8])> = fetched
            .messages
            .iter()
            .map(|m| (m.hash.as_str(), m.data.0.as_slice()))
            .collect();
        fresh += msgs.len();
        let now = now_ms();
        let report = config.merge(&msgs, now);
        for (hash, cause) in &report.skipped {
            tracing::debug!(identity = id, namespace = ns, %hash, %cause, "config message skipped");
        }
        changed |= report.changed;
        if config.needs_dump() {
            let dump = config.dump(now);
            ctx.blocking(move |s| s.set_config_dump(id, i32::from(ns), &dump))
                .await
                .map_err(super::poller::engine_err)?;
        }
    }
    if changed {
        apply(ctx, record, state).await?;
        state.applied = true;
    }
    Ok(fresh)
}

/// Applies the configs to the store: the identity's display name and its contacts' nicknames
/// (as the contacts' local names). Only differences are written.
async fn apply(ctx: &Ctx, record: &IdentityRecord, state: &Configs) -> Result<(), PollError> {
    let id = record.id;
    let name = state.get(2).and_then(|c| user_profile::name(c.data()));
    if name.is_some() && name != record.display_name {
        let identity = record.name.clone();
        ctx.blocking(move |s| s.set_display_name(&identity, name.as_deref()))
            .await
            .map_err(super::poller::engine_err)?;
    }
    let list = state
        .get(3)
        .map(|c| contacts::list(c.data()))
        .unwrap_or_default();
    for c in list {
        if c.nickname.is_empty() {
            continue;
        }
        let account_id = c.session_id.to_string();
        let nickname = c.nickname.clone();
        let now = now_ms();
        ctx.blocking(move |s| {
            if s.contact(id, &account_id)?.name.as_deref() != Some(nickname.as_str()) {
                s.set_contact_name(id, &account_id, Some(&nickname), now)?;
            }
            Ok(())
        })
        .await
        .map_err(super::poller::engine_err)?;
    }
    // Rooms joined on the account's other devices are joined here too.
    let rooms = state
        .get(5)
        .map(|c| user_groups::communities(c.data()))
        .unwrap_or_default();
    if !rooms.is_empty() {
        ctx.blocking(move |s| super::community::adopt(s, id, &rooms, now_ms()))
            .await
            .map_err(super::poller::engine_err)?;
    }
    Ok(())
}
