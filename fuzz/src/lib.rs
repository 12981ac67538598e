//! Fixed keys the fuzz targets share, so a finding replays the same way every time.

use std::sync::OnceLock;

use session_proto::keys::IdentityKeys;

/// The receiving account every target decrypts for (derived once per process).
pub fn recipient() -> &'static IdentityKeys {
    static KEYS: OnceLock<IdentityKeys> = OnceLock::new();
    KEYS.get_or_init(|| IdentityKeys::from_seed(&[0x11; 32]))
}

/// The sending account of the structured targets (derived once per process).
pub fn sender() -> &'static IdentityKeys {
    static KEYS: OnceLock<IdentityKeys> = OnceLock::new();
    KEYS.get_or_init(|| IdentityKeys::from_seed(&[0x22; 32]))
}

/// Splits off the first byte (a selector) from the input.
pub fn split_selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(s, rest)| (*s, rest))
}

use session_proto::groups::keys::GroupKeys;
use session_proto::groups::GroupAdminKeys;

/// The seed of the fixed group.
pub const GROUP_SEED: [u8; 32] = [0x5a; 32];

/// The fixed group's admin key set, with [`recipient`] as a member and one rekey done, so it
/// holds a key to encrypt and decrypt with (built once per process; targets only read it).
pub fn group_admin() -> &'static GroupKeys {
    static KEYS: OnceLock<GroupKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let own = recipient();
        let admin = GroupAdminKeys::from_seed(&GROUP_SEED);
        let mut keys = GroupKeys::for_admin(Some(own), admin).expect("a seed gives a group key");
        keys.rekey(&[own.account_id().clone(), sender().account_id().clone()])
            .expect("rekey for 05 members");
        keys
    })
}
