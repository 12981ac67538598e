//! Retention: forgetting an identity's old events (`[retention]` in the config).

use redb::ReadableTable;

use super::{decode, IdentityId, Store, StoreError, StoredEvent, EVENTS, PEER_EVENTS};

impl Store {
    /// Deletes the events of `identity` recorded before `before_ms`, with their index entries,
    /// in one transaction; returns how many. Seqs are never reused; conversations and contacts
    /// stay. (Hashes of received messages outlive their events until [`Store::prune`].)
    pub fn forget_events_before(
        &self,
        identity: IdentityId,
        before_ms: u64,
    ) -> Result<usize, StoreError> {
        self.write("forgetting old events", |tx| {
            let mut events = tx.open_table(EVENTS)?;
            let mut doomed = Vec::new();
            for row in events.range((identity, 0)..=(identity, u64::MAX))? {
                let (k, v) = row?;
                let event: StoredEvent = decode("event", v.value())?;
                // The log is in recording order: the first young event ends the old ones.
                if event.recorded_at_ms >= before_ms {
                    break;
                }
                doomed.push((k.value().1, event.kind.conversation().to_owned()));
            }
            let mut index = tx.open_table(PEER_EVENTS)?;
            for (seq, peer) in &doomed {
                events.remove((identity, *seq))?;
                index.remove((identity, peer.as_str(), *seq))?;
            }
            Ok(doomed.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::tests::TempDir;
    use crate::store::{Received, Store, WebhookRecord, WebhookSource};

    const PEER: &str = "05bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn msg(hash: &str, at: u64) -> Received {
        Received {
            sender: PEER.to_owned(),
            text: "t".to_owned(),
            sent_at_ms: at,
            received_at_ms: at,
            hash: hash.to_owned(),
            sender_profile_name: None,
            sync_target: None,
            conversation: None,
            extras: Default::default(),
            attachments: Vec::new(),
            pointers: Vec::new(),
            server_id: None,
            edited_at_ms: None,
        }
    }

    #[test]
    fn old_events_go_young_ones_stay_and_webhook_cursors_are_durable() {
        let dir = TempDir::new("retention");
        let store = Store::open(dir.path()).expect("open");
        let me = store
            .add_identity("me", &format!("05{}", "aa".repeat(32)), &[1; 32], 0)
            .expect("identity");
        store
            .record_received(me.id, 0, &[msg("h1", 100)], None, 100)
            .expect("old");
        store
            .record_received(me.id, 0, &[msg("h2", 5_000)], None, 5_000)
            .expect("young");
        let hook = WebhookRecord {
            identity: me.id,
            name: "bot".into(),
            url: "http://127.0.0.1:1/".into(),
            secret: crate::webhooks::sign::new_secret(),
            source: WebhookSource::Api,
            paused: false,
            dead: None,
            created_at_ms: 0,
        };
        store.add_webhook(&hook, 0).expect("webhook");
        assert!(store
            .advance_webhook_cursor(me.id, "bot", 1)
            .expect("advance"));
        assert!(!store
            .advance_webhook_cursor(me.id, "bot", 1)
            .expect("not back"));
        let before = store.last_seq(me.id).expect("seq");
        assert_eq!(store.forget_events_before(me.id, 1_000).expect("forget"), 1);
        let (left, _) = store.events(me.id, 0, 0, 100, false).expect("events");
        assert!(left.iter().all(|e| e.recorded_at_ms >= 1_000));
        assert_eq!(store.last_seq(me.id).expect("seq"), before);
        let (peer_left, _) = store
            .peer_events(me.id, PEER, 0, 0, 100, false)
            .expect("index");
        assert_eq!(peer_left, left);
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.webhook(me.id, "bot").expect("kept").1, 1);
        store.remove_identity("me").expect("remove");
        assert!(store.webhooks(None).expect("list").is_empty());
    }
}
