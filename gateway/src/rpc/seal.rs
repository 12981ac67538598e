//! The [`Sealer`] the daemon uses: Session one-to-one v1 messages from `session_proto::message`;
//! and the sync copy of a sent message for the account's other devices ([`sync_copy`]).

use rand::rngs::OsRng;
use session_proto::account_id::AccountId;
use session_proto::keys::IdentityKeys;
use session_proto::message;
use session_proto::protos::Content;
use session_proto::storage_rpc::message_hash;

use super::{ApiError, Sealer};
use crate::store::SyncCopy;

/// Seals a Content as a Session client does: padded, signed, sealed for the recipient, in an
/// Envelope and a WebSocketMessage (the bytes a `store` sends, before base64).
#[derive(Debug, Default, Clone, Copy)]
pub struct SessionSealer;

impl Sealer for SessionSealer {
    fn seal(
        &self,
        sender: &IdentityKeys,
        recipient: &AccountId,
        content: &Content,
        sent_at_ms: u64,
    ) -> Result<Vec<u8>, ApiError> {
        message::encrypt_message(sender, recipient, content, sent_at_ms, &mut OsRng)
            .map_err(|e| ApiError::protocol("recipient", &e))
    }
}

/// The sync copy of `content` sent to `recipient` (identity-and-messages §3.7), as the Session
/// apps make it: the same Content with `DataMessage.syncTarget` = the recipient's Account ID,
/// sealed by `sealer` for the sender's own Account ID with the same timestamp, for its own swarm
/// (namespace 0), with the hash the swarm will give it. `None` when there is nothing to copy: a
/// message to the identity itself (it is in its own swarm already) or a Content without a
/// DataMessage.
pub fn sync_copy(
    sealer: &dyn Sealer,
    sender: &IdentityKeys,
    recipient: &AccountId,
    content: &Content,
    sent_at_ms: u64,
) -> Result<Option<SyncCopy>, ApiError> {
    let own = sender.account_id();
    if recipient == own || content.data_message.is_none() {
        return Ok(None);
    }
    let mut copy = content.clone();
    if let Some(data) = copy.data_message.as_mut() {
        data.sync_target = Some(recipient.to_string());
    }
    let payload = sealer.seal(sender, own, &copy, sent_at_ms)?;
    // The copy goes where the message goes, namespace NAMESPACE_DEFAULT (0), of our own swarm.
    let hash = message_hash(own.as_bytes(), 0, &payload);
    Ok(Some(SyncCopy {
        account: own.to_string(),
        payload,
        hash,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_messages_open_for_the_recipient_only() {
        let alice = IdentityKeys::generate(&mut OsRng);
        let bob = IdentityKeys::generate(&mut OsRng);
        let content = message::text_content("hi bob", Some("Alice"), 1_700_000_000_000);
        let sealed = SessionSealer
            .seal(&alice, bob.account_id(), &content, 1_700_000_000_000)
            .expect("seal");
        let opened = message::decrypt_message(&bob, &sealed).expect("bob opens it");
        assert_eq!(opened.sender.to_string(), alice.account_id().to_string());
        assert_eq!(opened.envelope_timestamp, 1_700_000_000_000);
        let data = opened.content.data_message.expect("a data message");
        assert_eq!(data.body.as_deref(), Some("hi bob"));
        let name = data.profile.and_then(|p| p.display_name);
        assert_eq!(name.as_deref(), Some("Alice"));
        assert!(message::decrypt_message(&alice, &sealed).is_err());
    }

    #[test]
    fn the_sync_copy_opens_for_the_sender_with_the_recipient_as_target() {
        let alice = IdentityKeys::generate(&mut OsRng);
        let bob = IdentityKeys::generate(&mut OsRng);
        let at = 1_700_000_000_000;
        let content = message::text_content("hi bob", Some("Alice"), at);
        let copy = sync_copy(&SessionSealer, &alice, bob.account_id(), &content, at)
            .expect("seal")
            .expect("a copy");
        assert_eq!(copy.account, alice.account_id().to_string());
        assert_eq!(
            copy.hash,
            message_hash(alice.account_id().as_bytes(), 0, &copy.payload)
        );
        let opened = message::decrypt_message(&alice, &copy.payload).expect("alice opens it");
        assert_eq!(opened.sender.to_string(), alice.account_id().to_string());
        assert_eq!(opened.envelope_timestamp, at);
        let data = opened.content.data_message.expect("a data message");
        assert_eq!(data.body.as_deref(), Some("hi bob"));
        assert_eq!(data.sync_target, Some(bob.account_id().to_string()));
        assert!(message::decrypt_message(&bob, &copy.payload).is_err());
        // Nothing to copy: a note to self, or a Content that is not a message.
        assert_eq!(
            sync_copy(&SessionSealer, &alice, alice.account_id(), &content, at).expect("ok"),
            None
        );
        let typing = message::typing_content(true, at);
        assert_eq!(
            sync_copy(&SessionSealer, &alice, bob.account_id(), &typing, at).expect("ok"),
            None
        );
    }
}
