//! The bt-encoding of config messages and dumps: decode, and the encoder round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_proto::config::bt::Value;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = Value::decode(data) {
        let enc = v.encode();
        assert_eq!(Value::decode(&enc).expect("an encoded value decodes"), v);
    }
});
