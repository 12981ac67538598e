//! What a conversation carries besides text: replies (quotes), reactions, unsend requests, read
//! receipts, disappearing-message settings and timer updates, message request responses and
//! data-extraction notices. Builders make each Content as desktop does; [`interpret`] reads a
//! received Content back into one [`Interaction`] (or says why it refuses one).
//!
//! The wire shapes (identity-and-messages §4, `SessionProtos.proto`):
//!
//! ```text
//! reply       Content{dataMessage{body, quote{id=quoted sent ms, author=05…}, profile}, sigTimestamp}
//! reaction    Content{dataMessage{reaction{id=target sent ms, author, emoji, action REACT|REMOVE}}, sigTimestamp}
//! unsend      Content{unsendRequest{timestamp=target sent ms, author=05… (the sender itself)}, sigTimestamp}
//! receipt     Content{receiptMessage{type=READ, timestamp=[sent ms, …]}, sigTimestamp}
//! timer       Content{dataMessage{flags=EXPIRATION_TIMER_UPDATE}, expirationType, expirationTimer, sigTimestamp}
//! expiring    any of the above with Content.expirationType (1 after read, 2 after send) and
//!             Content.expirationTimer (seconds, 0 = off)
//! request ok  Content{messageRequestResponse{isApproved=true, profile}, sigTimestamp}
//! extraction  Content{dataExtractionNotification{type SCREENSHOT|MEDIA_SAVED, timestamp}, sigTimestamp}
//! ```
//!
//! Everything here is conversation-agnostic: the same Contents travel in one-to-one messages,
//! group messages and (for quotes and reactions) community posts.

use crate::account_id::AccountId;
use crate::protos::{
    content, data_extraction_notification, data_message, receipt_message, Content,
    DataExtractionNotification, DataMessage, LokiProfile, MessageRequestResponse, ReceiptMessage,
    UnsendRequest,
};

/// The longest disappearing timer accepted, in seconds: 14 days, the longest a swarm keeps a
/// message (so a longer timer could not be enforced) and the longest the apps offer.
pub const MAX_TIMER_SECS: u32 = 14 * 24 * 3600;
/// The most timestamps one read receipt may carry before the rest are ignored (desktop sends
/// one per batch of messages read at once).
pub const MAX_RECEIPT_TIMESTAMPS: usize = 1000;
/// The longest reaction emoji accepted, in bytes (one emoji with modifiers is far shorter).
pub const MAX_EMOJI_BYTES: usize = 64;

/// When a disappearing message's timer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpiryMode {
    /// When the recipient reads it (`DELETE_AFTER_READ`, 1).
    AfterRead,
    /// When it is sent (`DELETE_AFTER_SEND`, 2).
    AfterSend,
}

impl ExpiryMode {
    fn to_wire(self) -> content::ExpirationType {
        match self {
            ExpiryMode::AfterRead => content::ExpirationType::DeleteAfterRead,
            ExpiryMode::AfterSend => content::ExpirationType::DeleteAfterSend,
        }
    }
}

/// A disappearing-message setting: a mode and a timer of 1 to [`MAX_TIMER_SECS`] seconds.
/// "Off" is `Option::<Expiry>::None` wherever a setting is optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Expiry {
    /// When the timer starts.
    pub mode: ExpiryMode,
    /// How long after the start the message goes, in seconds.
    pub seconds: u32,
}

impl Expiry {
    /// A setting, or why not: a zero timer is "off", not a setting; a timer over
    /// [`MAX_TIMER_SECS`] is refused.
    pub fn new(mode: ExpiryMode, seconds: u32) -> Result<Expiry, &'static str> {
        if seconds == 0 {
            return Err("a disappearing timer of 0 seconds is off");
        }
        if seconds > MAX_TIMER_SECS {
            return Err("a disappearing timer longer than 14 days");
        }
        Ok(Expiry { mode, seconds })
    }

    /// The timer in milliseconds.
    pub fn millis(&self) -> u64 {
        u64::from(self.seconds) * 1000
    }
}

/// Writes `expiry` into a Content's expiration fields (nothing for `None`).
pub fn set_expiry(content: &mut Content, expiry: Option<Expiry>) {
    if let Some(e) = expiry {
        content.expiration_type = Some(e.mode.to_wire() as i32);
        content.expiration_timer = Some(e.seconds);
    }
}

/// Reads a Content's expiration fields: `Ok(None)` when it does not disappear, `Err` with the
/// reason for a timer it sets that cannot be honoured (an unknown type, a timer over the limit).
pub fn expiry_of(content: &Content) -> Result<Option<Expiry>, &'static str> {
    let seconds = content.expiration_timer.unwrap_or(0);
    if seconds == 0 {
        return Ok(None);
    }
    let mode = match content
        .expiration_type
        .map(content::ExpirationType::try_from)
    {
        Some(Ok(content::ExpirationType::DeleteAfterRead)) => ExpiryMode::AfterRead,
        Some(Ok(content::ExpirationType::DeleteAfterSend)) => ExpiryMode::AfterSend,
        // Legacy clients sent a timer without a type: it counted from reading.
        None | Some(Ok(content::ExpirationType::Unknown)) => ExpiryMode::AfterRead,
        Some(Err(_)) => return Err("an unknown disappearing-message type"),
    };
    Expiry::new(mode, seconds).map(Some)
}

/// The message a reply or a reaction points at: its sender's timestamp and its author, which
/// together name a message in any conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageRef {
    /// The referenced message's Session timestamp (its Envelope timestamp), ms.
    pub sent_at_ms: u64,
    /// Its author's Account ID (`05…`, or `15…` in a community), as text.
    pub author: String,
}

fn profile(display_name: Option<&str>) -> Option<LokiProfile> {
    display_name.map(|name| LokiProfile {
        display_name: Some(name.to_owned()),
        ..LokiProfile::default()
    })
}

fn data_content(data: DataMessage, timestamp_ms: u64, expiry: Option<Expiry>) -> Content {
    let mut content = Content {
        data_message: Some(data),
        sig_timestamp: Some(timestamp_ms),
        ..Content::default()
    };
    set_expiry(&mut content, expiry);
    content
}

/// A visible message: text, optionally quoting `reply_to`, optionally disappearing. Without
/// a quote and expiry it is [`crate::message::text_content`]'s message.
pub fn message_content(
    body: &str,
    reply_to: Option<&MessageRef>,
    display_name: Option<&str>,
    expiry: Option<Expiry>,
    timestamp_ms: u64,
) -> Content {
    data_content(
        DataMessage {
            body: Some(body.to_owned()),
            quote: reply_to.map(|r| data_message::Quote {
                id: r.sent_at_ms,
                author: r.author.clone(),
            }),
            profile: profile(display_name),
            ..DataMessage::default()
        },
        timestamp_ms,
        expiry,
    )
}

/// A reaction with `emoji` to `target` (added), or its removal.
pub fn reaction_content(
    target: &MessageRef,
    emoji: &str,
    remove: bool,
    expiry: Option<Expiry>,
    timestamp_ms: u64,
) -> Content {
    let action = if remove {
        data_message::reaction::Action::Remove
    } else {
        data_message::reaction::Action::React
    };
    data_content(
        DataMessage {
            reaction: Some(data_message::Reaction {
                id: target.sent_at_ms,
                author: target.author.clone(),
                emoji: Some(emoji.to_owned()),
                action: action as i32,
            }),
            ..DataMessage::default()
        },
        timestamp_ms,
        expiry,
    )
}

/// "Delete for everyone" of the message `author` sent at `target_sent_at_ms`. Only the author
/// sends it; receivers refuse one whose author is not its sender ([`interpret`]).
pub fn unsend_content(target_sent_at_ms: u64, author: &AccountId, timestamp_ms: u64) -> Content {
    Content {
        unsend_request: Some(UnsendRequest {
            timestamp: target_sent_at_ms,
            author: author.to_string(),
        }),
        sig_timestamp: Some(timestamp_ms),
        ..Content::default()
    }
}

/// A read receipt for the messages sent at `read_sent_at_ms` (their senders' timestamps).
pub fn read_receipt_content(read_sent_at_ms: &[u64], timestamp_ms: u64) -> Content {
    Content {
        receipt_message: Some(ReceiptMessage {
            r#type: receipt_message::Type::Read as i32,
            timestamp: read_sent_at_ms.to_vec(),
        }),
        sig_timestamp: Some(timestamp_ms),
        ..Content::default()
    }
}

/// The conversation's disappearing setting changed to `expiry` (`None`: off).
pub fn timer_update_content(expiry: Option<Expiry>, timestamp_ms: u64) -> Content {
    let mut content = data_content(
        DataMessage {
            flags: Some(data_message::Flags::ExpirationTimerUpdate as u32),
            ..DataMessage::default()
        },
        timestamp_ms,
        expiry,
    );
    if expiry.is_none() {
        // Desktop writes the off state explicitly.
        content.expiration_type = Some(content::ExpirationType::Unknown as i32);
        content.expiration_timer = Some(0);
    }
    content
}

/// Accepting a message request, as desktop sends it when the user replies to or accepts one.
pub fn request_response_content(display_name: Option<&str>, timestamp_ms: u64) -> Content {
    Content {
        message_request_response: Some(MessageRequestResponse {
            is_approved: true,
            profile_key: None,
            profile: profile(display_name),
        }),
        sig_timestamp: Some(timestamp_ms),
        ..Content::default()
    }
}

/// What a data-extraction notice reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Extraction {
    /// A screenshot of the conversation was taken.
    Screenshot,
    /// An attachment was saved.
    MediaSaved,
}

/// A data-extraction notice of `kind` at `at_ms`.
pub fn extraction_content(kind: Extraction, at_ms: u64, timestamp_ms: u64) -> Content {
    let kind = match kind {
        Extraction::Screenshot => data_extraction_notification::Type::Screenshot,
        Extraction::MediaSaved => data_extraction_notification::Type::MediaSaved,
    };
    Content {
        data_extraction_notification: Some(DataExtractionNotification {
            r#type: kind as i32,
            timestamp: Some(at_ms),
        }),
        sig_timestamp: Some(timestamp_ms),
        ..Content::default()
    }
}

/// A received Content as one thing that happened in a conversation (see [`interpret`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    /// A visible message (text, maybe a quote): the text gateway's message.
    Message {
        /// `dataMessage.body` (may be empty).
        body: String,
        /// The quoted message, if a valid quote.
        reply_to: Option<MessageRef>,
        /// How it disappears, if it does.
        expiry: Option<Expiry>,
        /// Why a timer it carried was ignored (it is recorded without one).
        expiry_refused: Option<&'static str>,
    },
    /// A reaction added or removed.
    Reaction {
        /// The message reacted to.
        target: MessageRef,
        /// The emoji.
        emoji: String,
        /// True: removed.
        remove: bool,
    },
    /// The sender unsent one of its messages.
    Unsend {
        /// The unsent message's timestamp.
        target_sent_at_ms: u64,
    },
    /// The sender read the messages sent at these timestamps.
    ReadReceipt {
        /// The timestamps of the messages read (at most [`MAX_RECEIPT_TIMESTAMPS`]).
        sent_at_ms: Vec<u64>,
    },
    /// The sender changed the conversation's disappearing setting (`None`: off).
    TimerUpdate {
        /// The new setting.
        expiry: Option<Expiry>,
    },
    /// The sender accepted (or declined) our message request.
    RequestResponse {
        /// True: accepted.
        approved: bool,
    },
    /// The sender took a screenshot or saved media.
    Extraction {
        /// Which.
        kind: Extraction,
    },
}

/// Reads a received Content sent by `sender` as an [`Interaction`]. `Ok(None)` for Contents
/// that are none of these (typing notices, calls, group control, empty ones); `Err` with the
/// reason for one that is malformed or not allowed: a reaction without an emoji or with a bad
/// author, an unsend by someone else than its author, an unknown receipt type, a timer update
/// with an absurd timer.
pub fn interpret(sender: &AccountId, c: &Content) -> Result<Option<Interaction>, &'static str> {
    if let Some(d) = &c.data_message {
        if let Some(r) = &d.reaction {
            let emoji = r.emoji.clone().unwrap_or_default();
            if emoji.is_empty() || emoji.len() > MAX_EMOJI_BYTES {
                return Err("a reaction without an emoji or with an overlong one");
            }
            let remove = match data_message::reaction::Action::try_from(r.action) {
                Ok(data_message::reaction::Action::React) => false,
                Ok(data_message::reaction::Action::Remove) => true,
                Err(_) => return Err("a reaction with an unknown action"),
            };
            let target = message_ref(r.id, &r.author).ok_or("a reaction to a bad message")?;
            return Ok(Some(Interaction::Reaction {
                target,
                emoji,
                remove,
            }));
        }
        if d.group_update_message.is_some() {
            return Ok(None);
        }
        if d.flags.unwrap_or(0) & (data_message::Flags::ExpirationTimerUpdate as u32) != 0 {
            let expiry = expiry_of(c)?;
            return Ok(Some(Interaction::TimerUpdate { expiry }));
        }
        let body = d.body.clone().unwrap_or_default();
        let shows = !body.is_empty()
            || !d.attachments.is_empty()
            || d.quote.is_some()
            || !d.preview.is_empty()
            || d.community_invitation.is_some();
        if shows {
            let (expiry, expiry_refused) = match expiry_of(c) {
                Ok(e) => (e, None),
                Err(why) => (None, Some(why)),
            };
            return Ok(Some(Interaction::Message {
                body,
                reply_to: d.quote.as_ref().and_then(|q| message_ref(q.id, &q.author)),
                expiry,
                expiry_refused,
            }));
        }
    }
    if let Some(u) = &c.unsend_request {
        if u.author.parse::<AccountId>().ok().as_ref() != Some(sender) {
            return Err("an unsend request for a message of someone else");
        }
        return Ok(Some(Interaction::Unsend {
            target_sent_at_ms: u.timestamp,
        }));
    }
    if let Some(r) = &c.receipt_message {
        if receipt_message::Type::try_from(r.r#type) != Ok(receipt_message::Type::Read) {
            return Err("a receipt of an unknown type");
        }
        let mut sent_at_ms = r.timestamp.clone();
        sent_at_ms.truncate(MAX_RECEIPT_TIMESTAMPS);
        return Ok(Some(Interaction::ReadReceipt { sent_at_ms }));
    }
    if let Some(r) = &c.message_request_response {
        return Ok(Some(Interaction::RequestResponse {
            approved: r.is_approved,
        }));
    }
    if let Some(n) = &c.data_extraction_notification {
        let kind = match data_extraction_notification::Type::try_from(n.r#type) {
            Ok(data_extraction_notification::Type::Screenshot) => Extraction::Screenshot,
            Ok(data_extraction_notification::Type::MediaSaved) => Extraction::MediaSaved,
            Err(_) => return Err("a data-extraction notice of an unknown type"),
        };
        return Ok(Some(Interaction::Extraction { kind }));
    }
    Ok(None)
}

/// A quote's or reaction's target: a non-zero timestamp and an author that parses as an
/// Account ID.
fn message_ref(sent_at_ms: u64, author: &str) -> Option<MessageRef> {
    let id: AccountId = author.parse().ok()?;
    (sent_at_ms != 0).then(|| MessageRef {
        sent_at_ms,
        author: id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> AccountId {
        format!("05{}", hex::encode([b; 32]))
            .parse()
            .expect("an Account ID")
    }

    #[test]
    fn builders_and_interpret_agree() {
        let alice = id(1);
        let target = MessageRef {
            sent_at_ms: 42,
            author: alice.to_string(),
        };
        let exp = Expiry::new(ExpiryMode::AfterSend, 10).expect("ok");
        let reply = message_content("hi", Some(&target), Some("A"), Some(exp), 7);
        assert_eq!(
            interpret(&alice, &reply),
            Ok(Some(Interaction::Message {
                body: "hi".into(),
                reply_to: Some(target.clone()),
                expiry: Some(exp),
                expiry_refused: None,
            }))
        );
        let react = reaction_content(&target, "👍", false, None, 7);
        assert!(matches!(
            interpret(&alice, &react),
            Ok(Some(Interaction::Reaction { remove: false, .. }))
        ));
        assert_eq!(
            interpret(&alice, &unsend_content(42, &alice, 7)),
            Ok(Some(Interaction::Unsend {
                target_sent_at_ms: 42
            }))
        );
        // Only the author unsends.
        assert!(interpret(&id(2), &unsend_content(42, &alice, 7)).is_err());
        assert_eq!(
            interpret(&alice, &timer_update_content(None, 7)),
            Ok(Some(Interaction::TimerUpdate { expiry: None }))
        );
        assert_eq!(
            interpret(&alice, &read_receipt_content(&[1, 2], 7)),
            Ok(Some(Interaction::ReadReceipt {
                sent_at_ms: vec![1, 2]
            }))
        );
    }

    #[test]
    fn absurd_and_malformed_input_is_refused_with_a_reason() {
        let alice = id(1);
        assert!(Expiry::new(ExpiryMode::AfterRead, MAX_TIMER_SECS + 1).is_err());
        assert!(Expiry::new(ExpiryMode::AfterRead, 0).is_err());
        let mut absurd = timer_update_content(None, 7);
        absurd.expiration_type = Some(2);
        absurd.expiration_timer = Some(u32::MAX);
        assert!(interpret(&alice, &absurd).is_err());
        // A message with an absurd timer is still a message, without the timer.
        let mut msg = message_content("x", None, None, None, 7);
        msg.expiration_type = Some(2);
        msg.expiration_timer = Some(u32::MAX);
        assert!(matches!(
            interpret(&alice, &msg),
            Ok(Some(Interaction::Message {
                expiry: None,
                expiry_refused: Some(_),
                ..
            }))
        ));
        let target = MessageRef {
            sent_at_ms: 1,
            author: alice.to_string(),
        };
        assert!(interpret(&alice, &reaction_content(&target, "", false, None, 7)).is_err());
        let mut bad_author = reaction_content(&target, "x", false, None, 7);
        if let Some(r) = bad_author
            .data_message
            .as_mut()
            .and_then(|d| d.reaction.as_mut())
        {
            r.author = "nope".into();
        }
        assert!(interpret(&alice, &bad_author).is_err());
        let mut receipt = read_receipt_content(&[1], 7);
        if let Some(r) = receipt.receipt_message.as_mut() {
            r.r#type = 0;
        }
        assert!(interpret(&alice, &receipt).is_err());
        // A reply whose quote is malformed is a plain message.
        let mut q = message_content("x", Some(&target), None, None, 7);
        if let Some(quote) = q.data_message.as_mut().and_then(|d| d.quote.as_mut()) {
            quote.author = "zz".into();
        }
        assert!(matches!(
            interpret(&alice, &q),
            Ok(Some(Interaction::Message { reply_to: None, .. }))
        ));
    }
}
