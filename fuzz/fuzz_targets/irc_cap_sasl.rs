//! IRC payloads: `CAP REQ` arguments, SASL PLAIN base64, command lookup.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessiond_irc::{cap, command, sasl};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(reqs) = cap::parse_req(s) {
        let mut set = cap::CapSet::default();
        for (c, on) in reqs {
            set.set(c, on);
            assert_eq!(cap::Cap::from_name(c.name()), Some(c));
        }
        let _ = set.names();
    }
    if let Ok(plain) = sasl::decode_plain(s) {
        let _ = plain.user();
    }
    let _ = command::lookup(s);
});
