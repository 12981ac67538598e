//! The devnet echo identity: answers every incoming message with "echo: <text>", through the
//! same outbox as Send (so the reply is sealed, queued, retried and delivered like any other).

use std::sync::Arc;

use rand::RngCore;
use session_proto::account_id::AccountId;
use session_proto::keys::IdentityKeys;
use session_proto::message::text_content;
use tokio::sync::watch;

use super::Ctx;
use crate::rpc::{now_ms, sync_copy, Sealer, SessionSealer, MAX_TEXT_UTF16, NAMESPACE_DEFAULT};
use crate::store::{EventKind, IdentityRecord, NewOutgoing, Received};

/// Events read per batch.
const BATCH: usize = 256;

/// The reply to `text`, cut to the text limit.
pub fn echo_text(text: &str) -> String {
    let mut out = String::from("echo: ");
    let mut units = out.encode_utf16().count();
    for c in text.chars() {
        units += c.len_utf16();
        if units > MAX_TEXT_UTF16 {
            break;
        }
        out.push(c);
    }
    out
}

/// Echoes messages that arrive for `identity` from now on, until `stop` turns true.
pub async fn run(
    ctx: Arc<Ctx>,
    identity: IdentityRecord,
    keys: IdentityKeys,
    ttl_ms: u64,
    mut stop: watch::Receiver<bool>,
) {
    let id = identity.id;
    let mut log = ctx.store.watch(id);
    let mut after = match ctx.blocking(move |s| s.last_seq(id)).await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::warn!(cause = %e, "echo cannot read its log");
            return;
        }
    };
    let keys = Arc::new(keys);
    loop {
        let batch = ctx
            .blocking(move |s| s.events(id, after, 0, BATCH, false))
            .await;
        let (events, more) = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(cause = %e, "echo cannot read its log");
                return;
            }
        };
        for event in events {
            after = event.seq;
            if let EventKind::Incoming(m) = event.kind {
                reply(&ctx, &identity, &keys, m, ttl_ms).await;
            }
        }
        if more {
            continue;
        }
        tokio::select! {
            _ = stop.changed() => break,
            r = log.changed() => if r.is_err() { break },
        }
    }
}

async fn reply(ctx: &Ctx, me: &IdentityRecord, keys: &Arc<IdentityKeys>, m: Received, ttl_ms: u64) {
    let Ok(to) = m.sender.parse::<AccountId>() else {
        return;
    };
    let id = me.id;
    let keys = Arc::clone(keys);
    let queued = ctx
        .blocking(move |s| {
            let text = echo_text(&m.text);
            let sent_at_ms = now_ms();
            // Read afresh: SetProfile may have changed the name since the echo started.
            let display_name = s.identity_by_id(id)?.display_name;
            let content = text_content(&text, display_name.as_deref(), sent_at_ms);
            let sealed = SessionSealer
                .seal(&keys, &to, &content, sent_at_ms)
                .and_then(|p| {
                    Ok((
                        p,
                        sync_copy(&SessionSealer, &keys, &to, &content, sent_at_ms)?,
                    ))
                });
            let (payload, sync_copy) = match sealed {
                Ok(sealed) => sealed,
                Err(e) => {
                    tracing::debug!(cause = %e, "echo cannot seal a reply");
                    return Ok(());
                }
            };
            let mut mid = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut mid);
            s.queue_outgoing(
                id,
                NewOutgoing {
                    message_id: hex::encode(mid),
                    recipient: to.to_string(),
                    text,
                    sent_at_ms,
                    payload,
                    namespace: NAMESPACE_DEFAULT,
                    ttl_ms,
                    idempotency_key: None,
                    sync_copy,
                    extras: Default::default(),
                    attachments: Vec::new(),
                },
                sent_at_ms,
            )
            .map(|_| ())
        })
        .await;
    match queued {
        Ok(()) => ctx.outbox_wake.notify_one(),
        Err(e) => tracing::warn!(cause = %e, "echo cannot queue a reply"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_prefixes_and_stays_within_the_limit() {
        assert_eq!(echo_text("hi"), "echo: hi");
        let long = "x".repeat(MAX_TEXT_UTF16);
        assert_eq!(echo_text(&long).encode_utf16().count(), MAX_TEXT_UTF16);
    }
}
