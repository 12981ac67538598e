//! The bencode subset of onion v4 requests and replies: list decoding, V4Request and V4Response,
//! each with its encoder round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_proto::bencode::{decode_list, encode_list, V4Request, V4Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(items) = decode_list(data) {
        let enc = encode_list(&items);
        assert_eq!(decode_list(&enc).expect("an encoded list decodes"), items);
    }
    if let Ok(req) = V4Request::decode(data) {
        let again = V4Request::decode(&req.encode()).expect("an encoded request decodes");
        assert_eq!(again, req);
    }
    if let Ok(resp) = V4Response::decode(data) {
        let again = V4Response::decode(&resp.encode()).expect("an encoded response decodes");
        assert_eq!(again, resp);
    }
});
