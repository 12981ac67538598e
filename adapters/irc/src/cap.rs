//! IRCv3 capability negotiation: the capabilities this server offers and `CAP REQ` parsing.

/// A capability this server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// `batch`: related lines (history) grouped in a batch.
    Batch,
    /// `cap-notify`: told when capabilities change (implied by `CAP LS 302`).
    CapNotify,
    /// `draft/chathistory`: the client asks for history itself (CHATHISTORY).
    Chathistory,
    /// `echo-message`: the client's own messages are echoed back to it.
    EchoMessage,
    /// `message-tags`: tags such as `msgid` and client tags such as `+typing`.
    MessageTags,
    /// `draft/message-redaction`: REDACT (unsent and expired messages; unsending).
    MessageRedaction,
    /// `draft/read-marker`: MARKREAD (the conversation's read mark, both ways).
    ReadMarker,
    /// `sasl`: AUTHENTICATE PLAIN.
    Sasl,
    /// `server-time`: a `time` tag on messages.
    ServerTime,
}

/// Every capability, in the order `CAP LS` lists them.
pub const ALL: [Cap; 9] = [
    Cap::Batch,
    Cap::CapNotify,
    Cap::Chathistory,
    Cap::EchoMessage,
    Cap::MessageRedaction,
    Cap::ReadMarker,
    Cap::MessageTags,
    Cap::Sasl,
    Cap::ServerTime,
];

impl Cap {
    /// The capability's name.
    pub fn name(self) -> &'static str {
        match self {
            Cap::Batch => "batch",
            Cap::CapNotify => "cap-notify",
            Cap::Chathistory => "draft/chathistory",
            Cap::EchoMessage => "echo-message",
            Cap::MessageTags => "message-tags",
            Cap::MessageRedaction => "draft/message-redaction",
            Cap::ReadMarker => "draft/read-marker",
            Cap::Sasl => "sasl",
            Cap::ServerTime => "server-time",
        }
    }

    /// The capability named `name`, if this server offers it (case-sensitive, as in the spec).
    pub fn from_name(name: &str) -> Option<Cap> {
        ALL.into_iter().find(|c| c.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// The `CAP LS` list: with version 302 and above capabilities carry their values.
pub fn ls(version_302: bool) -> String {
    ALL.iter()
        .map(|c| match (c, version_302) {
            (Cap::Sasl, true) => "sasl=PLAIN".to_owned(),
            (c, _) => c.name().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A set of capabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSet(u16);

impl CapSet {
    /// True if `cap` is in the set.
    pub fn has(self, cap: Cap) -> bool {
        self.0 & cap.bit() != 0
    }

    /// Adds or removes `cap`.
    pub fn set(&mut self, cap: Cap, on: bool) {
        if on {
            self.0 |= cap.bit();
        } else {
            self.0 &= !cap.bit();
        }
    }

    /// The names in the set, space-separated (for `CAP LIST`).
    pub fn names(self) -> String {
        ALL.iter()
            .filter(|c| self.has(**c))
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Parses the argument of `CAP REQ`: capability names, each optionally prefixed with `-` to
/// disable it. All or nothing: `None` if any name is unknown or carries a value (the whole
/// request is then NAKed), or if the request is empty.
pub fn parse_req(arg: &str) -> Option<Vec<(Cap, bool)>> {
    let mut out = Vec::new();
    for word in arg.split(' ').filter(|w| !w.is_empty()) {
        let (name, on) = match word.strip_prefix('-') {
            Some(n) => (n, false),
            None => (word, true),
        };
        out.push((Cap::from_name(name)?, on));
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn req_is_all_or_nothing() {
        assert_eq!(
            parse_req("sasl -batch  server-time"),
            Some(vec![
                (Cap::Sasl, true),
                (Cap::Batch, false),
                (Cap::ServerTime, true)
            ])
        );
        assert_eq!(parse_req("sasl bogus"), None);
        assert_eq!(parse_req("sasl=PLAIN"), None);
        assert_eq!(parse_req(""), None);
        assert_eq!(parse_req("SASL"), None);
    }

    #[test]
    fn sets_and_lists() {
        let mut s = CapSet::default();
        s.set(Cap::EchoMessage, true);
        s.set(Cap::Batch, true);
        s.set(Cap::Batch, false);
        assert!(s.has(Cap::EchoMessage) && !s.has(Cap::Batch));
        assert_eq!(s.names(), "echo-message");
        assert!(ls(true).contains("sasl=PLAIN"));
        assert!(ls(false).split(' ').any(|c| c == "sasl"));
    }
}
