//! Group keys messages (ns 12) as a member and as an admin load them. Selector even: the input
//! as retrieved (the signature check comes first); odd: the input's bt dict re-signed by the
//! fixed group's admin key, so the keys, members and supplement parsing behind it is reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_proto::config::bt::{encode_bytes, Value};
use session_proto::groups::keys::GroupKeys;
use session_proto::groups::GroupAdminKeys;
use sessiond_fuzz::{recipient, split_selector, GROUP_SEED};

fuzz_target!(|data: &[u8]| {
    let Some((sel, rest)) = split_selector(data) else {
        return;
    };
    let own = recipient();
    let admin = GroupAdminKeys::from_seed(&GROUP_SEED);
    let message = if sel & 1 == 0 {
        rest.to_vec()
    } else {
        let Ok(Value::Dict(mut d)) = Value::decode(rest) else {
            return;
        };
        d.remove(&b"~"[..]);
        let mut out = Value::Dict(d).encode();
        out.pop();
        let sig = admin.keys().sign(&out);
        encode_bytes(b"~", &mut out);
        encode_bytes(&sig.to_bytes(), &mut out);
        out.push(b'e');
        out
    };
    let Ok(mut member) = GroupKeys::for_member(own, admin.id()) else {
        return;
    };
    if member
        .load_key_message("h", &message, 1_700_000_000_000)
        .is_ok()
    {
        let _ = member.current_generation();
        let _ = member.needs_rekey();
    }
    let Ok(mut as_admin) = GroupKeys::for_admin(Some(own), admin) else {
        return;
    };
    let _ = as_admin.load_key_message("h", &message, 1_700_000_000_000);
});
