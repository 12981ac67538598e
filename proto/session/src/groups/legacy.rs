//! Recognising legacy closed groups (`05`-keyed, retired upstream) so that their messages are
//! reported as "legacy group, unsupported" rather than dropped silently or misread.
//!
//! Signs of a legacy group:
//! - a `DataMessage` with field 104 (`closedGroupControlMessage`: new group, key pairs,
//!   member changes) or field 3 (`group`, the older GroupContext); both are `reserved` in the
//!   current protobufs, so prost skips them and they must be looked for in the raw bytes;
//! - an `Envelope` of type `CLOSED_GROUP_MESSAGE` whose `source` is a `05` Account ID (legacy
//!   group messages name the group there; groups v2 never set it to a `05` ID);
//! - a group conversation whose ID starts with `05`.

use prost::Message as _;

use crate::account_id::{AccountId, Prefix};
use crate::err::GroupError;
use crate::protos::{envelope, Envelope};

/// What gave a legacy group away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyGroup {
    /// A `closedGroupControlMessage` (DataMessage field 104).
    ControlMessage,
    /// A `GroupContext` (DataMessage field 3).
    GroupContext,
    /// A closed-group Envelope sourced from a `05` group.
    GroupEnvelope,
    /// A group ID with the `05` prefix.
    GroupId,
}

impl LegacyGroup {
    /// The typed error the daemon reports (kind `Unsupported`).
    pub fn into_error(self) -> GroupError {
        GroupError::LegacyGroup {
            what: match self {
                LegacyGroup::ControlMessage => "closed group control message",
                LegacyGroup::GroupContext => "group context",
                LegacyGroup::GroupEnvelope => "closed group envelope",
                LegacyGroup::GroupId => "05 group ID",
            },
        }
    }
}

/// Only the fields that betray a legacy group.
#[derive(Clone, PartialEq, prost::Message)]
struct ContentProbe {
    #[prost(message, optional, tag = "1")]
    data_message: Option<DataMessageProbe>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DataMessageProbe {
    #[prost(bytes = "vec", optional, tag = "3")]
    group: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "104")]
    closed_group_control_message: Option<Vec<u8>>,
}

/// Looks at the raw bytes of a decrypted `Content` for legacy-group fields. Bytes that do not
/// parse are not evidence of anything (`None`).
pub fn in_content(content_bytes: &[u8]) -> Option<LegacyGroup> {
    let probe = ContentProbe::decode(content_bytes).ok()?;
    let data = probe.data_message?;
    if data.closed_group_control_message.is_some() {
        Some(LegacyGroup::ControlMessage)
    } else if data.group.is_some() {
        Some(LegacyGroup::GroupContext)
    } else {
        None
    }
}

/// Whether an Envelope is a legacy closed-group message (type 7 sourced from a `05` ID).
pub fn in_envelope(env: &Envelope) -> Option<LegacyGroup> {
    let closed = env.r#type == envelope::Type::ClosedGroupMessage as i32;
    let from_05 = env
        .source
        .as_deref()
        .and_then(|s| AccountId::parse_raw(s).ok())
        .is_some_and(|id| id.prefix() == Some(Prefix::Standard));
    (closed && from_05).then_some(LegacyGroup::GroupEnvelope)
}

/// Checks that a group ID is a groups-v2 (`03`) ID: a `05` one is a legacy group.
pub fn check_group_id(id: &AccountId) -> Result<(), GroupError> {
    match id.prefix() {
        Some(Prefix::Group) => Ok(()),
        Some(Prefix::Standard) => Err(LegacyGroup::GroupId.into_error()),
        _ => Err(GroupError::NotAGroupId {
            prefix: id.prefix_byte(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::err::{ErrorKind, HasKind};
    use crate::protos::Content;

    /// A Content whose DataMessage carries a raw field `tag` (length-delimited).
    fn content_with_field(tag: u32, inner: &[u8]) -> Vec<u8> {
        let mut data = Vec::new();
        prost::encoding::bytes::encode(tag, &inner.to_vec(), &mut data);
        prost::encoding::string::encode(1, &"hi".to_owned(), &mut data);
        let mut content = Vec::new();
        prost::encoding::bytes::encode(1, &data, &mut content);
        content
    }

    #[test]
    fn legacy_fields_are_recognised_and_current_content_is_not() {
        // A legacy "new closed group" control message: type NEW (1) and a public key.
        let ctrl = [0x08, 0x01, 0x12, 0x02, 0x05, 0x01];
        let bytes = content_with_field(104, &ctrl);
        assert_eq!(in_content(&bytes), Some(LegacyGroup::ControlMessage));
        // Such a Content still parses with the current protobufs (the field is skipped), which
        // is why the raw look is needed.
        let parsed = Content::decode(bytes.as_slice()).expect("parses");
        assert_eq!(
            parsed.data_message.and_then(|d| d.body).as_deref(),
            Some("hi")
        );
        assert_eq!(
            in_content(&content_with_field(3, b"\x0a\x01\x05")),
            Some(LegacyGroup::GroupContext)
        );
        let current = crate::message::text_content("hello", None, 1).encode_to_vec();
        assert_eq!(in_content(&current), None);
        let v2 = super::super::control::invite_response(true, 1).encode_to_vec();
        assert_eq!(in_content(&v2), None);
        assert_eq!(in_content(b"\xff\xff"), None);
        assert_eq!(in_content(b""), None);
    }

    #[test]
    fn legacy_envelopes_and_ids() {
        let legacy_group = format!("05{}", "ab".repeat(32));
        let env = Envelope {
            r#type: envelope::Type::ClosedGroupMessage as i32,
            source: Some(legacy_group.clone()),
            timestamp: 1,
            ..Default::default()
        };
        assert_eq!(in_envelope(&env), Some(LegacyGroup::GroupEnvelope));
        let mut dm = env.clone();
        dm.r#type = envelope::Type::SessionMessage as i32;
        assert_eq!(in_envelope(&dm), None);
        let mut v2 = env.clone();
        v2.source = None;
        assert_eq!(in_envelope(&v2), None);

        let id = AccountId::parse_raw(&legacy_group).expect("id");
        let err = check_group_id(&id).expect_err("legacy");
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains("legacy"));
        let v2_id = AccountId::new(Prefix::Group, [1; 32]);
        assert!(check_group_id(&v2_id).is_ok());
        let blinded = AccountId::new(Prefix::Blinded15, [1; 32]);
        assert!(matches!(
            check_group_id(&blinded),
            Err(GroupError::NotAGroupId { prefix: 0x15 })
        ));
    }
}
