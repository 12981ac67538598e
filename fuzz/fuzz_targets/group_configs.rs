//! Group info (ns 13) and members (ns 14) configs as a member merges them. Selector bit 0: the
//! input as a ConfigMessage, re-serialized and signed by the fixed group's admin key (so the
//! signature passes and the typed views are reached), or the input as the plaintext as is; bit
//! 1 picks info or members. Both are then encrypted under the group key and merged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_proto::config::{crypt, Config, ConfigMessage};
use session_proto::groups::configs::{config_keys, info, members, INFO, MEMBERS};
use sessiond_fuzz::{group_admin, split_selector};

const NOW_MS: u64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((sel, rest)) = split_selector(data) else {
        return;
    };
    let keys = group_admin();
    let ty = if sel & 2 == 0 { INFO } else { MEMBERS };
    let plain = if sel & 1 == 0 {
        rest.to_vec()
    } else {
        let Ok(m) = ConfigMessage::parse(rest, None, 5, false) else {
            return;
        };
        let Some(admin) = keys.admin() else {
            return;
        };
        m.serialize(Some(admin.keys().signing_key()))
    };
    let Some(key) = keys.encryption_key() else {
        return;
    };
    let ct = crypt::encrypt(&plain, key.key(), ty.domain);
    let mut config = Config::new(ty, config_keys(keys));
    let report = config.merge(&[("h", &ct)], NOW_MS);
    if report.changed {
        let _ = info(config.data());
        let _ = members(config.data());
    }
    let dump = config.dump(NOW_MS);
    let _ = Config::load(ty, config_keys(keys), &dump, NOW_MS).expect("a dump loads");
});
