//! Storage-RPC reply bodies from snodes, as the client parses them: retrieve, store (swarm
//! results), get_swarm and 421 bodies, delete/expire results, batch, info, expiries, oxend and
//! seed replies. The first byte picks the type; typed replies must survive a re-encode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_proto::storage_rpc::{
    BatchReply, DeleteAllResult, DeleteResult, ExpireAllResult, ExpireResult, GetExpiriesReply,
    InfoReply, OxendReply, RetrieveReply, RevocationResult, SeedReply, ServiceNodesResult,
    StoreResult, SwarmReply, SwarmResults,
};
use sessiond_fuzz::split_selector;

fn round_trip<T>(body: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(v) = serde_json::from_slice::<T>(body) {
        let text = serde_json::to_vec(&v).expect("a parsed reply serializes");
        let again: T = serde_json::from_slice(&text).expect("a re-encoded reply parses");
        assert_eq!(again, v);
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) {
    let _ = serde_json::from_slice::<T>(body);
}

fuzz_target!(|data: &[u8]| {
    let Some((sel, body)) = split_selector(data) else {
        return;
    };
    match sel % 13 {
        0 => round_trip::<RetrieveReply>(body),
        // get_swarm, and the body of a 421 (wrong swarm) reply.
        1 => round_trip::<SwarmReply>(body),
        2 => round_trip::<InfoReply>(body),
        3 => {
            if let Ok(r) = serde_json::from_slice::<SwarmResults<StoreResult>>(body) {
                let _ = r.any_ok();
            }
        }
        4 => parse::<SwarmResults<DeleteResult>>(body),
        5 => parse::<SwarmResults<DeleteAllResult>>(body),
        6 => parse::<SwarmResults<ExpireResult>>(body),
        7 => parse::<SwarmResults<ExpireAllResult>>(body),
        8 => parse::<SwarmResults<RevocationResult>>(body),
        9 => parse::<BatchReply>(body),
        10 => round_trip::<GetExpiriesReply>(body),
        11 => {
            if let Ok(r) = serde_json::from_slice::<OxendReply>(body) {
                let _ = serde_json::from_value::<ServiceNodesResult>(r.result);
            }
        }
        _ => parse::<SeedReply>(body),
    }
});
