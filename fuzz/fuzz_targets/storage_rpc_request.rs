//! Storage-RPC request bodies as a snode (the devnet) parses them, with signature checks, and
//! the re-encode of whatever parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_proto::storage_rpc::{Request, SeedRequest};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::from_json(data) {
        let _ = req.method();
        let _ = req.account();
        let _ = req.subaccount();
        let _ = req.verify_signature();
        let again = Request::from_json(&req.to_json()).expect("an encoded request parses");
        assert_eq!(again.method(), req.method());
    }
    let _ = SeedRequest::from_json(data);
});
