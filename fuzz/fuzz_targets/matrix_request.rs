//! Matrix client input: request bodies into the handlers' types and the checks each handler
//! makes on them, `/sync` query strings, room ids, aliases and community URLs in paths.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = sessiond_fuzz::split_selector(data) else {
        return;
    };
    let _ = sessiond_matrix::fuzzing::request(selector, rest);
});
