//! The table of IRC commands this server understands: minimum parameters and whether a client
//! may send it before registration (ergo's `irc/commands.go` shape). Anything not here is 421.

/// What the server knows about a command before it handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// The command, upper case.
    pub name: &'static str,
    /// Fewer parameters than this: 461 ERR_NEEDMOREPARAMS.
    pub min_params: usize,
    /// May be sent before registration completes (otherwise 451 ERR_NOTREGISTERED).
    pub before_registration: bool,
}

const fn spec(name: &'static str, min_params: usize, before_registration: bool) -> Spec {
    Spec {
        name,
        min_params,
        before_registration,
    }
}

/// Every command, sorted by name.
pub const COMMANDS: &[Spec] = &[
    spec("AUTHENTICATE", 1, true),
    spec("AWAY", 0, false),
    spec("CAP", 1, true),
    spec("CHATHISTORY", 1, false),
    spec("INVITE", 2, false),
    spec("ISON", 1, false),
    spec("JOIN", 1, false),
    spec("KICK", 2, false),
    spec("LIST", 0, false),
    spec("LUSERS", 0, false),
    spec("MODE", 1, false),
    spec("MOTD", 0, false),
    spec("NAMES", 0, false),
    spec("NICK", 0, true),
    spec("NOTICE", 0, false),
    spec("PART", 1, false),
    spec("PASS", 1, true),
    spec("PING", 1, true),
    spec("PONG", 0, true),
    spec("PRIVMSG", 0, false),
    spec("QUIT", 0, true),
    spec("TAGMSG", 1, false),
    spec("TOPIC", 1, false),
    spec("USER", 4, true),
    spec("USERHOST", 1, false),
    spec("VERSION", 0, false),
    spec("WHO", 0, false),
    spec("WHOIS", 1, false),
];

/// The spec of `command` (upper case), if the server knows it.
pub fn lookup(command: &str) -> Option<Spec> {
    COMMANDS
        .binary_search_by(|s| s.name.cmp(command))
        .ok()
        .map(|i| COMMANDS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_found() {
        assert!(COMMANDS.windows(2).all(|w| w[0].name < w[1].name));
        assert_eq!(lookup("USER").map(|s| s.min_params), Some(4));
        assert!(lookup("KILL").is_none());
        assert!(!lookup("PRIVMSG").expect("known").before_registration);
    }
}
