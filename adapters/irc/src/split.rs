//! Splitting a Session message into IRC lines: at newlines, then at UTF-8 character boundaries
//! so that every line fits in 512 bytes with the prefix the server puts before it.

/// The text parts of one message, each at most `budget` bytes: one per line of the text (CR LF,
/// LF or CR end a line), long lines cut at character boundaries. NUL (which IRC cannot carry)
/// becomes U+FFFD; an empty line becomes a single space so that it is not lost; trailing empty
/// lines are dropped. An empty text gives no parts. `budget` is at least 4 (one character).
pub fn split_text(text: &str, budget: usize) -> Vec<String> {
    let budget = budget.max(4);
    let text = text.replace('\0', "\u{fffd}");
    let normalised = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines: Vec<&str> = normalised.split('\n').collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out = Vec::new();
    for line in lines {
        if line.is_empty() {
            out.push(" ".to_owned());
            continue;
        }
        let mut rest = line;
        while !rest.is_empty() {
            let mut cut = rest.len().min(budget);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push(rest[..cut].to_owned());
            rest = &rest[cut..];
        }
    }
    out
}

/// The bytes left for the text in `:<source> <command> <target> :<text>\r\n` within 512.
pub fn text_budget(source: &str, command: &str, target: &str) -> usize {
    // ':' source ' ' command ' ' target ' ' ':' ... "\r\n"
    512usize.saturating_sub(1 + source.len() + 1 + command.len() + 1 + target.len() + 2 + 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_at_newlines_and_boundaries() {
        assert_eq!(split_text("a\nb\r\nc\rd", 100), ["a", "b", "c", "d"]);
        assert_eq!(split_text("a\n\nb\n\n", 100), ["a", " ", "b"]);
        assert!(split_text("", 100).is_empty());
        assert_eq!(split_text("abcdef", 4), ["abcd", "ef"]);
        assert_eq!(split_text("ééé", 5), ["éé", "é"]);
        assert_eq!(split_text("a\0b", 100), ["a\u{fffd}b"]);
        assert_eq!(
            text_budget("nick!user@host", "PRIVMSG", "me"),
            512 - ":nick!user@host PRIVMSG me :\r\n".len()
        );
    }

    proptest! {
        #[test]
        fn parts_fit(text in "[a\n\ré😀\0 ]{0,300}", budget in 4usize..64) {
            for p in split_text(&text, budget) {
                prop_assert!(p.len() <= budget && !p.is_empty());
                prop_assert!(!p.contains(['\r', '\n', '\0']));
            }
        }

        #[test]
        fn one_line_loses_nothing(text in "[^\r\n]{1,300}", budget in 4usize..64) {
            let want = text.replace('\0', "\u{fffd}");
            prop_assert_eq!(split_text(&text, budget).concat(), want);
        }
    }
}
