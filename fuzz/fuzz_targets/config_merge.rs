//! Account config merging as the daemon does it on retrieve: one or two messages (split at a
//! selected point), encrypted under the account's key (or raw, through the legacy wrapper),
//! merged into each user config type, then the typed views, a push and a dump reload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_proto::config::object::{CONTACTS, CONVO_INFO_VOLATILE, USER_GROUPS, USER_PROFILE};
use session_proto::config::{
    contacts, convo_info_volatile, crypt, user_groups, user_profile, Config, ConfigKeys,
};

const NOW_MS: u64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Some(([sel, cut], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let own = sessiond_fuzz::recipient();
    let ty = [USER_PROFILE, CONTACTS, CONVO_INFO_VOLATILE, USER_GROUPS][usize::from(sel % 4)];
    let cut = usize::from(*cut).min(rest.len());
    let (a, b) = rest.split_at(if sel & 8 == 0 { rest.len() } else { cut });
    let msgs: Vec<Vec<u8>> = [a, b]
        .into_iter()
        .filter(|m| !m.is_empty())
        .map(|m| {
            if sel & 4 == 0 {
                crypt::encrypt(m, own.seed(), ty.domain)
            } else {
                m.to_vec()
            }
        })
        .collect();
    let incoming: Vec<(&str, &[u8])> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| (["h0", "h1"][i], m.as_slice()))
        .collect();
    let mut config = Config::new(ty, ConfigKeys::user(&own));
    let report = config.merge(&incoming, NOW_MS);
    if report.changed {
        let d = config.data();
        let _ = contacts::list(d);
        let _ = convo_info_volatile::list(d);
        let _ = user_groups::groups(d);
        let _ = user_groups::communities(d);
        let _ = user_profile::name(d);
        let _ = user_profile::profile_pic(d);
    }
    let _ = config.push();
    let dump = config.dump(NOW_MS);
    let loaded = Config::load(ty, ConfigKeys::user(&own), &dump, NOW_MS).expect("a dump loads");
    assert_eq!(loaded.seqno(), config.seqno());
});
