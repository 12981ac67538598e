//! IRC lines from local clients: framing (LineReader), parsing, formatting round trip, and
//! server-time tags.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessiond_irc::line::{parse_time, LineReader, Message};

fuzz_target!(|data: &[u8]| {
    // Framing: the raw stream cut into lines, each parsed.
    let mut reader = LineReader::default();
    reader.buffer().extend_from_slice(data);
    while let Some(line) = reader.next_line() {
        if let Ok(line) = line {
            let _ = Message::parse(&line);
        }
    }
    // Round trip: whatever parses formats to a line that parses to the same formatting.
    if let Ok(msg) = Message::parse(data) {
        let _ = msg.tag("time").and_then(parse_time);
        let line = msg.to_line();
        // `parse` takes a line without its ending, as `LineReader` hands it over.
        let body = line.strip_suffix("\r\n").expect("a formatted line ends with CRLF");
        let again = Message::parse(body.as_bytes()).expect("a formatted line parses");
        assert_eq!(again.to_line(), line, "formatting is stable");
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse_time(s);
    }
});
