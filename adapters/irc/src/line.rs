//! IRC lines: framing a byte stream into lines, parsing a line into a [`Message`] and formatting
//! a [`Message`] back into a line. Pure code: no I/O, no clock.
//!
//! # Byte layout (RFC 1459 §2.3.1 and IRCv3 message-tags)
//!
//! ```text
//! ['@' <tags> ' '] [':' <source> ' '] <command> {' ' <middle>} [' :' <trailing>] "\r\n"
//! <tags> = <key>['=' <escaped value>] {';' <key>['=' <escaped value>]}
//! ```
//!
//! Limits: the tag data (between `@` and the space) is at most [`MAX_TAG_BYTES`] bytes, the rest
//! of the line at most [`MAX_BODY_BYTES`] bytes plus the line ending. Longer lines are refused
//! whole ([`LineError::TooLong`], answered with 417), never cut. Lines end with `\n`, with or
//! without `\r` before it.

use std::fmt::Write as _;

/// Tag data a client may send: 4094 bytes, not counting `@` and the space after it.
pub const MAX_TAG_BYTES: usize = 4094;
/// The rest of a line: 512 bytes with `\r\n`, so 510 without.
pub const MAX_BODY_BYTES: usize = 510;
/// The longest raw line the framer accepts: `@`, tags, space, body, `\r\n`.
pub const MAX_LINE_BYTES: usize = 1 + MAX_TAG_BYTES + 1 + MAX_BODY_BYTES + 2;

/// Why a line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line (or its tag data) is over the limit.
    #[error("the line is longer than the limit")]
    TooLong,
    /// The line is not UTF-8. `command` is the command as far as it could be read, if any.
    #[error("the line is not valid UTF-8")]
    BadUtf8 {
        /// The command of the line, read leniently, for the `FAIL` reply.
        command: Option<String>,
    },
    /// The line has tags or a source but no command.
    #[error("the line has no command")]
    NoCommand,
}

/// One message tag: a key and an optional (unescaped) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// The key, e.g. `time`, `+typing`, `msgid`.
    pub key: String,
    /// The value with escapes removed; `None` for a tag without `=`.
    pub value: Option<String>,
}

/// One IRC message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The message tags, in order.
    pub tags: Vec<Tag>,
    /// The source (`nick!user@host` or a server name), without the `:`.
    pub source: Option<String>,
    /// The command (upper-cased on parse) or a three-digit numeric.
    pub command: String,
    /// The parameters; the last may contain spaces.
    pub params: Vec<String>,
}

impl Message {
    /// A message with a command and parameters, no tags, no source.
    pub fn new(command: &str, params: Vec<String>) -> Message {
        Message {
            tags: Vec::new(),
            source: None,
            command: command.to_owned(),
            params,
        }
    }

    /// Sets the source.
    pub fn with_source(mut self, source: impl Into<String>) -> Message {
        self.source = Some(source.into());
        self
    }

    /// Adds a tag.
    pub fn with_tag(mut self, key: &str, value: Option<String>) -> Message {
        self.tags.push(Tag {
            key: key.to_owned(),
            value,
        });
        self
    }

    /// The value of tag `key`, if present (`Some("")` for a tag without a value).
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_deref().unwrap_or(""))
    }

    /// Parameter `i`, if present.
    pub fn param(&self, i: usize) -> Option<&str> {
        self.params.get(i).map(String::as_str)
    }

    /// Parses one line (without its line ending). The command is upper-cased.
    pub fn parse(line: &[u8]) -> Result<Message, LineError> {
        let (tag_part, body) = split_tags(line);
        if tag_part.is_some_and(|t| t.len() > MAX_TAG_BYTES) || body.len() > MAX_BODY_BYTES {
            return Err(LineError::TooLong);
        }
        let line = std::str::from_utf8(line).map_err(|_| LineError::BadUtf8 {
            command: lenient_command(body),
        })?;
        let mut rest = line;
        let mut tags = Vec::new();
        if let Some(after) = rest.strip_prefix('@') {
            let (t, r) = after.split_once(' ').unwrap_or((after, ""));
            tags = parse_tags(t);
            rest = r;
        }
        rest = rest.trim_start_matches(' ');
        let mut source = None;
        if let Some(after) = rest.strip_prefix(':') {
            let (s, r) = after.split_once(' ').unwrap_or((after, ""));
            source = Some(s.to_owned());
            rest = r.trim_start_matches(' ');
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return Err(LineError::NoCommand);
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.to_owned());
                break;
            }
            let (p, r) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(p.to_owned());
            rest = r;
        }
        Ok(Message {
            tags,
            source,
            command: command.to_ascii_uppercase(),
            params,
        })
    }

    /// The line for this message, with `\r\n`. Always one valid line: a middle parameter that
    /// could not be one (empty, with a space, starting with `:`) becomes `*`; CR, LF and NUL are
    /// dropped; a body over [`MAX_BODY_BYTES`] has its last parameter cut at a character
    /// boundary (callers split long texts beforehand, see [`crate::split`]).
    pub fn to_line(&self) -> String {
        let mut out = String::with_capacity(128);
        for tag in &self.tags {
            // A key that cleans to nothing is left out with its value (parsers drop it too).
            let start = out.len();
            out.push(if start == 0 { '@' } else { ';' });
            let key_start = out.len();
            push_clean(&mut out, &tag.key, |c| c != ';' && c != ' ' && c != '=');
            if out.len() == key_start {
                out.truncate(start);
                continue;
            }
            if let Some(v) = &tag.value {
                out.push('=');
                escape_tag_value(&mut out, v);
            }
        }
        if !out.is_empty() {
            out.push(' ');
        }
        let body_start = out.len();
        if let Some(source) = &self.source {
            out.push(':');
            push_clean(&mut out, source, |c| c != ' ');
            out.push(' ');
        }
        // A command that cleans to nothing, or to something read as a source or tags, is `*`.
        let start = out.len();
        push_clean(&mut out, &self.command, |c| c != ' ');
        if out[start..].is_empty() || out[start..].starts_with([':', '@']) {
            out.truncate(start);
            out.push('*');
        }
        let last = self.params.len().saturating_sub(1);
        for (i, p) in self.params.iter().enumerate() {
            out.push(' ');
            if i == last {
                let mut clean = String::with_capacity(p.len());
                push_clean(&mut clean, p, |_| true);
                if clean.is_empty() || clean.contains(' ') || clean.starts_with(':') {
                    out.push(':');
                }
                let room = MAX_BODY_BYTES.saturating_sub(out.len() - body_start);
                let start = out.len();
                out.push_str(&clean);
                if out.len() - start > room {
                    let mut cut = start + room;
                    while !out.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    out.truncate(cut);
                }
            } else {
                // Judge the parameter as it will be written: one of only NULs or line breaks
                // would otherwise leave an empty middle parameter (two spaces).
                let start = out.len();
                push_clean(&mut out, p, |_| true);
                let clean = &out[start..];
                if clean.is_empty() || clean.contains(' ') || clean.starts_with(':') {
                    out.truncate(start);
                    out.push('*');
                }
            }
        }
        out.push_str("\r\n");
        out
    }
}

/// Appends `s` without CR, LF, NUL and the characters `keep` refuses.
fn push_clean(out: &mut String, s: &str, keep: impl Fn(char) -> bool) {
    out.extend(
        s.chars()
            .filter(|&c| c != '\r' && c != '\n' && c != '\0' && keep(c)),
    );
}

/// Splits off the tag data (without `@` and the space) from the rest of a raw line.
fn split_tags(line: &[u8]) -> (Option<&[u8]>, &[u8]) {
    match line.strip_prefix(b"@") {
        Some(after) => match after.iter().position(|&b| b == b' ') {
            Some(i) => (Some(&after[..i]), &after[i + 1..]),
            None => (Some(after), &[]),
        },
        None => (None, line),
    }
}

/// The command of a line that is not UTF-8, if it can be read as ASCII letters or digits.
fn lenient_command(body: &[u8]) -> Option<String> {
    let mut rest = body;
    while rest.first() == Some(&b' ') {
        rest = &rest[1..];
    }
    if rest.first() == Some(&b':') {
        let i = rest.iter().position(|&b| b == b' ')?;
        rest = &rest[i + 1..];
    }
    let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let command = &rest[..end];
    (!command.is_empty() && command.len() <= 32 && command.iter().all(u8::is_ascii_alphanumeric))
        .then(|| String::from_utf8_lossy(command).to_ascii_uppercase())
}

fn parse_tags(data: &str) -> Vec<Tag> {
    data.split(';')
        .filter(|t| !t.is_empty())
        .map(|t| match t.split_once('=') {
            Some((k, v)) => Tag {
                key: k.to_owned(),
                value: Some(unescape_tag_value(v)),
            },
            None => Tag {
                key: t.to_owned(),
                value: None,
            },
        })
        .collect()
}

/// IRCv3 tag value escaping: `;` `\:`, space `\s`, `\` `\\`, CR `\r`, LF `\n`.
fn escape_tag_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\0' => {}
            c => out.push(c),
        }
    }
}

/// The inverse of [`escape_tag_value`]; an unknown escape is the character itself, a lone
/// trailing backslash is dropped (as the spec says).
fn unescape_tag_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Splits a byte stream into lines (mini-redis style: a cheap scan, then a frame or "need more").
///
/// Feed bytes with [`LineReader::buffer`] and take lines with [`LineReader::next_line`] until it
/// returns `None`. An over-long line yields one `Err(TooLong)` as soon as it is known to be too
/// long; its remaining bytes up to the next `\n` are dropped. Empty lines are skipped.
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
    /// Inside an over-long line already reported: drop bytes up to the next `\n`.
    discarding: bool,
}

impl LineReader {
    /// The buffer to append received bytes to.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// The next complete line (without its line ending), `Err(TooLong)` for an over-long one,
    /// or `None` if more bytes are needed.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, LineError>> {
        loop {
            let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > MAX_LINE_BYTES {
                    self.buf.clear();
                    if !self.discarding {
                        self.discarding = true;
                        return Some(Err(LineError::TooLong));
                    }
                } else if self.discarding {
                    self.buf.clear();
                }
                return None;
            };
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            if self.discarding {
                self.discarding = false;
                continue;
            }
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > MAX_LINE_BYTES - 2 {
                return Some(Err(LineError::TooLong));
            }
            if line.is_empty() {
                continue;
            }
            return Some(Ok(line));
        }
    }
}

/// Formats a `time` tag value: `YYYY-MM-DDThh:mm:ss.sssZ` (UTC) from milliseconds since the Unix
/// epoch.
pub fn format_time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut out = String::with_capacity(24);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        ms % 1000
    );
    out
}

/// Parses a `time` tag value or CHATHISTORY `timestamp=`: `YYYY-MM-DDThh:mm:ss[.fraction]Z`,
/// to milliseconds since the Unix epoch. `None` for anything else (or a time before 1970).
pub fn parse_time(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || *b.last()? != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = s.get(r)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let frac = &s[19..s.len() - 1];
    let millis = if frac.is_empty() {
        0
    } else {
        let digits = frac.strip_prefix('.')?;
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let three: String = digits.chars().chain("000".chars()).take(3).collect();
        three.parse::<u64>().ok()?
    };
    let days = days_from_civil(y as i64, mo as u32, d as u32);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + mi * 60 + sec;
    Some(secs * 1000 + millis)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Message {
        Message::parse(s.as_bytes()).expect("parses")
    }

    #[test]
    fn parses_the_usual_shapes() {
        let m = parse("PRIVMSG alice :hello there");
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, ["alice", "hello there"]);
        let m = parse("@+typing=active;msgid=a\\sb :nick!u@h tagmsg bob");
        assert_eq!(m.tag("+typing"), Some("active"));
        assert_eq!(m.tag("msgid"), Some("a b"));
        assert_eq!(m.source.as_deref(), Some("nick!u@h"));
        assert_eq!(m.command, "TAGMSG");
        assert_eq!(m.params, ["bob"]);
        let m = parse("CAP  LS   302");
        assert_eq!(m.params, ["LS", "302"]);
        let m = parse("PRIVMSG x :");
        assert_eq!(m.params, ["x", ""]);
        let m = parse("USER a 0 * ::colon first");
        assert_eq!(m.params, ["a", "0", "*", ":colon first"]);
        assert_eq!(Message::parse(b"@a=b "), Err(LineError::NoCommand));
        assert_eq!(Message::parse(b":src"), Err(LineError::NoCommand));
    }

    #[test]
    fn limits_and_bad_utf8() {
        let ok = format!("PRIVMSG a :{}", "x".repeat(MAX_BODY_BYTES - 11));
        assert!(Message::parse(ok.as_bytes()).is_ok());
        let long = format!("PRIVMSG a :{}", "x".repeat(MAX_BODY_BYTES - 10));
        assert_eq!(Message::parse(long.as_bytes()), Err(LineError::TooLong));
        let tags = format!("@a={} PING x", "v".repeat(MAX_TAG_BYTES - 2));
        assert!(Message::parse(tags.as_bytes()).is_ok());
        let tags = format!("@a={} PING x", "v".repeat(MAX_TAG_BYTES - 1));
        assert_eq!(Message::parse(tags.as_bytes()), Err(LineError::TooLong));
        assert_eq!(
            Message::parse(b"privmsg bob :\xff\xfe"),
            Err(LineError::BadUtf8 {
                command: Some("PRIVMSG".into())
            })
        );
        assert_eq!(
            Message::parse(b"\xffPRIVMSG bob"),
            Err(LineError::BadUtf8 { command: None })
        );
    }

    #[test]
    fn formats_valid_lines_whatever_the_params() {
        let m = Message::new(
            "401",
            vec!["me".into(), "a b".into(), "No such nick".into()],
        )
        .with_source("sessiond");
        assert_eq!(m.to_line(), ":sessiond 401 me * :No such nick\r\n");
        let m = Message::new("PRIVMSG", vec!["x".into(), "a\r\nb\0c".into()]);
        assert_eq!(m.to_line(), "PRIVMSG x abc\r\n");
        let m = Message::new("PRIVMSG", vec!["x".into(), "\r\n".into()]);
        assert_eq!(m.to_line(), "PRIVMSG x :\r\n");
        let m = Message::new("PRIVMSG", vec!["x".into(), "é".repeat(400)]);
        let line = m.to_line();
        assert_eq!(line.len(), 512, "cut at a char boundary to fit 512 bytes");
        let m = Message::new("TAGMSG", vec!["x".into()])
            .with_tag("+typing", Some("active".into()))
            .with_tag("k", Some("a;b c\\".into()))
            .with_tag("flag", None);
        assert_eq!(
            m.to_line(),
            "@+typing=active;k=a\\:b\\sc\\\\;flag TAGMSG x\r\n"
        );
    }

    #[test]
    fn middle_params_are_judged_after_cleaning() {
        // Found by fuzz/irc_line: a middle parameter of only NULs (a client may send one) was
        // written as nothing, leaving two spaces, and one starting with NUL then `:` was
        // written as a trailing parameter.
        let m = parse("USER \0 PLA");
        assert_eq!(m.to_line(), "USER * PLA\r\n");
        let m = Message::new("X", vec!["\0:a".into(), "\r\n".into(), "b".into()]);
        assert_eq!(m.to_line(), "X * * b\r\n");
        let line = m.to_line();
        let again = Message::parse(line.trim_end().as_bytes()).expect("parses");
        assert_eq!(again.to_line(), line);
        // The same for the command: `\0:h` was written as `:h`, a source without a command.
        // And for tags: a key of only NUL was written as `@ `, an empty tag.
        let m = Message::new("X", vec![]).with_tag("\0", Some("v".into()));
        assert_eq!(m.to_line(), "X\r\n");
        let m = m.with_tag("k", None).with_tag("\r", None);
        assert_eq!(m.to_line(), "@k X\r\n");
        for command in ["\0:h", "\0", "\r\n@a"] {
            let line = Message::new(command, vec!["x".into()]).to_line();
            assert_eq!(line, "* x\r\n");
        }
    }

    #[test]
    fn reader_frames_lines_and_refuses_long_ones() {
        let mut r = LineReader::default();
        r.buffer().extend_from_slice(b"PING a\r\n\r\nPING b\nPI");
        assert_eq!(r.next_line(), Some(Ok(b"PING a".to_vec())));
        assert_eq!(r.next_line(), Some(Ok(b"PING b".to_vec())));
        assert_eq!(r.next_line(), None);
        r.buffer().extend_from_slice(b"NG c\n");
        assert_eq!(r.next_line(), Some(Ok(b"PING c".to_vec())));
        // An over-long line is reported once, as soon as it is known, and skipped whole.
        r.buffer()
            .extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 1));
        assert_eq!(r.next_line(), Some(Err(LineError::TooLong)));
        r.buffer().extend(std::iter::repeat_n(b'x', 5000));
        assert_eq!(r.next_line(), None);
        r.buffer().extend_from_slice(b"xxx\nPING d\n");
        assert_eq!(r.next_line(), Some(Ok(b"PING d".to_vec())));
        // A long line that arrives whole is reported too.
        r.buffer()
            .extend(std::iter::repeat_n(b'y', MAX_LINE_BYTES - 1));
        r.buffer().extend_from_slice(b"\n");
        assert_eq!(r.next_line(), Some(Err(LineError::TooLong)));
        assert_eq!(r.next_line(), None);
    }

    /// Fuzz finding (irc_line): a 510-byte line of one command with a NUL formats to a line
    /// whose body, without its CRLF, is within the limit and parses to the same formatting.
    #[test]
    fn a_longest_line_formats_to_a_line_that_parses_again() {
        let mut raw = vec![0u8];
        raw.extend(std::iter::repeat_n(b'm', MAX_BODY_BYTES - 1));
        let msg = Message::parse(&raw).expect("510 bytes parse");
        let line = msg.to_line();
        let body = line.strip_suffix("\r\n").expect("CRLF");
        assert_eq!(body.len(), MAX_BODY_BYTES - 1, "the NUL is dropped");
        let again = Message::parse(body.as_bytes()).expect("the formatted line parses");
        assert_eq!(again.to_line(), line);
        // With its line ending the body is 511 bytes: `parse` takes lines without it.
        assert_eq!(Message::parse(line.as_bytes()), Err(LineError::TooLong));
    }

    #[test]
    fn times() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_time(1_709_251_199_123), "2024-02-29T23:59:59.123Z");
        assert_eq!(
            parse_time("2024-02-29T23:59:59.123Z"),
            Some(1_709_251_199_123)
        );
        assert_eq!(parse_time("2024-02-29T23:59:59Z"), Some(1_709_251_199_000));
        assert_eq!(
            parse_time("2024-02-29T23:59:59.1Z"),
            Some(1_709_251_199_100)
        );
        assert_eq!(
            parse_time("2024-02-29T23:59:59.123456Z"),
            Some(1_709_251_199_123)
        );
        for bad in [
            "",
            "*",
            "2024-02-29",
            "2024-13-01T00:00:00Z",
            "2024-02-29T23:59:59.Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    fn middle() -> impl Strategy<Value = String> {
        "[!-9;-~][!-~]{0,12}"
    }

    fn trailing() -> impl Strategy<Value = String> {
        "[^\r\n\0]{0,40}"
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Message::parse(&bytes);
        }

        #[test]
        fn format_then_parse_round_trips(
            cmd in "[A-Z]{1,10}",
            mids in proptest::collection::vec(middle(), 0..5),
            last in proptest::option::of(trailing()),
            source in proptest::option::of("[!-9;-~][!-~]{0,20}"),
            tags in proptest::collection::vec(("[a-z+][a-z/.-]{0,8}", proptest::option::of("[^\0]{0,10}")), 0..3),
        ) {
            let mut params = mids;
            params.extend(last);
            let m = Message {
                tags: tags.into_iter().map(|(key, value)| Tag { key, value }).collect(),
                source,
                command: cmd,
                params,
            };
            let line = m.to_line();
            prop_assert!(line.ends_with("\r\n"));
            let body = &line[..line.len() - 2];
            prop_assert!(!body.contains(['\r', '\n', '\0']));
            let back = Message::parse(body.as_bytes()).expect("own line parses");
            prop_assert_eq!(back, m);
        }

        #[test]
        fn reader_splits_like_lines(chunks in proptest::collection::vec("[a-z \r\n]{0,30}", 0..10)) {
            let all: String = chunks.concat();
            let mut r = LineReader::default();
            let mut got = Vec::new();
            for c in &chunks {
                r.buffer().extend_from_slice(c.as_bytes());
                while let Some(l) = r.next_line() { got.push(l.expect("short lines")); }
            }
            let mut want: Vec<Vec<u8>> = all.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l).as_bytes().to_vec()).collect();
            want.pop(); // the unterminated rest
            want.retain(|l| !l.is_empty());
            prop_assert_eq!(got, want);
        }

        #[test]
        fn times_round_trip(ms in 0u64..8_000_000_000_000) {
            prop_assert_eq!(parse_time(&format_time(ms)), Some(ms));
        }
    }
}
