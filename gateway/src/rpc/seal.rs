//! The [`Sealer`] the daemon uses: Session one-to-one v1 messages from `session_proto::message`.

use rand::rngs::OsRng;
use session_proto::account_id::AccountId;
use session_proto::keys::IdentityKeys;
use session_proto::message;
use session_proto::protos::Content;

use super::{ApiError, Sealer};

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
}
