//! Webhooks in the store: each webhook's record and its durable cursor into its identity's
//! event log (tables `webhooks` and `webhook_cursors`).
//!
//! The cursor is the seq of the last event the endpoint accepted; the sender moves it with
//! [`Store::advance_webhook_cursor`] only after a 2xx, so a crash between the answer and the
//! commit sends that event again (at-least-once, same `webhook-id`).

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::IdentityId;
use super::{decode, encode, last_seq, require_identity, Store, StoreError, TxError, EVENTS};

/// `(identity id, webhook name)` → JSON [`WebhookRecord`].
pub(super) const WEBHOOKS: TableDefinition<'_, (u64, &str), &[u8]> =
    TableDefinition::new("webhooks");
/// `(identity id, webhook name)` → the seq of the last event the endpoint accepted.
pub(super) const WEBHOOK_CURSORS: TableDefinition<'_, (u64, &str), u64> =
    TableDefinition::new("webhook_cursors");

/// Where a webhook was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookSource {
    /// In the config file (`[[webhooks.endpoints]]`); brought in line with it at every start.
    Config,
    /// Added through the API.
    Api,
}

impl WebhookSource {
    /// "config" or "api".
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookSource::Config => "config",
            WebhookSource::Api => "api",
        }
    }
}

/// A webhook that gave up: it stays in this state, keeping its cursor, until replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// When it gave up, ms since the Unix epoch.
    pub since_ms: u64,
    /// The seq of the event it gave up on (the first dead letter).
    pub seq: u64,
    /// Why.
    pub reason: String,
}

/// A webhook of an identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecord {
    /// The identity whose events it receives.
    pub identity: IdentityId,
    /// Its name, unique per identity.
    pub name: String,
    /// The endpoint.
    pub url: String,
    /// The signing secret, `whsec_` + base64.
    pub secret: String,
    /// Where it was defined.
    pub source: WebhookSource,
    /// Paused by the user.
    pub paused: bool,
    /// Set in the dead-letter state.
    pub dead: Option<DeadLetter>,
    /// When it was added, ms.
    pub created_at_ms: u64,
}

impl Store {
    /// Adds a webhook whose cursor starts at `after_seq` (which must not be past the log's end).
    /// Fails with [`StoreError::WebhookTaken`] if the identity has one of that name.
    pub fn add_webhook(&self, record: &WebhookRecord, after_seq: u64) -> Result<(), StoreError> {
        self.write("adding a webhook", |tx| {
            require_identity(tx, record.identity)?;
            let last = last_seq(&tx.open_table(EVENTS)?, record.identity)?;
            if after_seq > last {
                return Err(StoreError::SeqPastEnd {
                    seq: after_seq,
                    last,
                }
                .into());
            }
            let key = (record.identity, record.name.as_str());
            let mut hooks = tx.open_table(WEBHOOKS)?;
            if hooks.get(key)?.is_some() {
                return Err(StoreError::WebhookTaken {
                    name: record.name.clone(),
                }
                .into());
            }
            hooks.insert(key, encode(record).as_slice())?;
            tx.open_table(WEBHOOK_CURSORS)?.insert(key, after_seq)?;
            Ok(())
        })
    }

    /// Brings the config file's webhooks into the store: each one in `wanted` is added (its
    /// cursor at the log's end, or at 0 when `from_start`) or, if it exists, gets the config's
    /// URL and secret and keeps its cursor and state; webhooks from the config that are no longer
    /// in it are removed. API webhooks are left alone; a config webhook whose name an API webhook
    /// has is skipped and named in the result.
    pub fn sync_config_webhooks(
        &self,
        wanted: &[(WebhookRecord, bool)],
    ) -> Result<Vec<String>, StoreError> {
        self.write("applying the config's webhooks", |tx| {
            let events = tx.open_table(EVENTS)?;
            let mut hooks = tx.open_table(WEBHOOKS)?;
            let mut cursors = tx.open_table(WEBHOOK_CURSORS)?;
            let mut stale = Vec::new();
            for row in hooks.iter()? {
                let (k, v) = row?;
                let record: WebhookRecord = decode("webhook", v.value())?;
                let (identity, name) = k.value();
                let still = wanted
                    .iter()
                    .any(|(w, _)| w.identity == identity && w.name == name);
                if record.source == WebhookSource::Config && !still {
                    stale.push((identity, name.to_owned()));
                }
            }
            for (identity, name) in &stale {
                hooks.remove((*identity, name.as_str()))?;
                cursors.remove((*identity, name.as_str()))?;
            }
            let mut skipped = Vec::new();
            for (want, from_start) in wanted {
                let key = (want.identity, want.name.as_str());
                let existing: Option<WebhookRecord> = match hooks.get(key)? {
                    Some(v) => Some(decode("webhook", v.value())?),
                    None => None,
                };
                match existing {
                    Some(old) if old.source == WebhookSource::Api => {
                        skipped.push(want.name.clone());
                    }
                    Some(mut old) => {
                        old.url = want.url.clone();
                        old.secret = want.secret.clone();
                        hooks.insert(key, encode(&old).as_slice())?;
                    }
                    None => {
                        let start = if *from_start {
                            0
                        } else {
                            last_seq(&events, want.identity)?
                        };
                        hooks.insert(key, encode(want).as_slice())?;
                        cursors.insert(key, start)?;
                    }
                }
            }
            Ok(skipped)
        })
    }

    /// The webhooks with their cursors: one identity's, or everyone's with `None`; sorted by
    /// identity, then name.
    pub fn webhooks(
        &self,
        identity: Option<IdentityId>,
    ) -> Result<Vec<(WebhookRecord, u64)>, StoreError> {
        self.read("listing webhooks", |tx| {
            let hooks = tx.open_table(WEBHOOKS)?;
            let cursors = tx.open_table(WEBHOOK_CURSORS)?;
            let rows = match identity {
                Some(id) => hooks.range((id, "")..(id.saturating_add(1), ""))?,
                None => hooks.iter()?,
            };
            let mut out = Vec::new();
            for row in rows {
                let (k, v) = row?;
                let record: WebhookRecord = decode("webhook", v.value())?;
                if identity.is_some_and(|id| id != record.identity) {
                    continue;
                }
                let cursor = cursors.get(k.value())?.map_or(0, |c| c.value());
                out.push((record, cursor));
            }
            Ok(out)
        })
    }

    /// One webhook with its cursor.
    pub fn webhook(
        &self,
        identity: IdentityId,
        name: &str,
    ) -> Result<(WebhookRecord, u64), StoreError> {
        self.read("reading a webhook", |tx| {
            let hooks = tx.open_table(WEBHOOKS)?;
            let v = hooks
                .get((identity, name))?
                .ok_or_else(|| StoreError::UnknownWebhook {
                    name: name.to_owned(),
                })?;
            let record: WebhookRecord = decode("webhook", v.value())?;
            let cursor = tx
                .open_table(WEBHOOK_CURSORS)?
                .get((identity, name))?
                .map_or(0, |c| c.value());
            Ok((record, cursor))
        })
    }

    /// Removes a webhook and its cursor.
    pub fn remove_webhook(&self, identity: IdentityId, name: &str) -> Result<(), StoreError> {
        self.write("removing a webhook", |tx| {
            if tx.open_table(WEBHOOKS)?.remove((identity, name))?.is_none() {
                return Err(StoreError::UnknownWebhook {
                    name: name.to_owned(),
                }
                .into());
            }
            tx.open_table(WEBHOOK_CURSORS)?.remove((identity, name))?;
            Ok(())
        })
    }

    /// Changes a webhook's record with `f` in one transaction; returns it after the change.
    pub fn update_webhook(
        &self,
        identity: IdentityId,
        name: &str,
        f: impl FnOnce(&mut WebhookRecord),
    ) -> Result<WebhookRecord, StoreError> {
        self.write("changing a webhook", |tx| {
            let mut hooks = tx.open_table(WEBHOOKS)?;
            let mut record: WebhookRecord = match hooks.get((identity, name))? {
                Some(v) => decode("webhook", v.value())?,
                None => {
                    return Err(StoreError::UnknownWebhook {
                        name: name.to_owned(),
                    }
                    .into())
                }
            };
            f(&mut record);
            hooks.insert((identity, name), encode(&record).as_slice())?;
            Ok(record)
        })
    }

    /// Moves a webhook's cursor to `seq` (an event the endpoint accepted). Returns false (and
    /// writes nothing) if the webhook is gone or its cursor is at or past `seq` already.
    pub fn advance_webhook_cursor(
        &self,
        identity: IdentityId,
        name: &str,
        seq: u64,
    ) -> Result<bool, StoreError> {
        self.write("moving a webhook's cursor", |tx| {
            if tx.open_table(WEBHOOKS)?.get((identity, name))?.is_none() {
                return Ok(false);
            }
            let mut cursors = tx.open_table(WEBHOOK_CURSORS)?;
            let current = cursors.get((identity, name))?.map_or(0, |c| c.value());
            if current >= seq {
                return Ok(false);
            }
            cursors.insert((identity, name), seq)?;
            Ok(true)
        })
    }
}

/// Removes every webhook of `identity` (inside [`Store::remove_identity`]'s transaction).
pub(super) fn remove_all(tx: &redb::WriteTransaction, identity: IdentityId) -> Result<(), TxError> {
    tx.open_table(WEBHOOKS)?
        .retain(|(owner, _), _| owner != identity)?;
    tx.open_table(WEBHOOK_CURSORS)?
        .retain(|(owner, _), _| owner != identity)?;
    Ok(())
}
