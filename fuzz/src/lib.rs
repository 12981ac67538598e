//! Fixed keys the fuzz targets share, so a finding replays the same way every time.

use session_proto::keys::IdentityKeys;

/// The receiving account every target decrypts for.
pub fn recipient() -> IdentityKeys {
    IdentityKeys::from_seed(&[0x11; 32])
}

/// The sending account of the structured targets.
pub fn sender() -> IdentityKeys {
    IdentityKeys::from_seed(&[0x22; 32])
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
/// holds a key to encrypt and decrypt with. Also returns that rekey's keys message.
pub fn group_admin() -> (GroupKeys, Vec<u8>) {
    let own = recipient();
    let admin = GroupAdminKeys::from_seed(&GROUP_SEED);
    let mut keys = GroupKeys::for_admin(Some(&own), admin).expect("a seed gives a group key");
    let message = keys
        .rekey(&[own.account_id().clone(), sender().account_id().clone()])
        .expect("rekey for 05 members");
    (keys, message)
}
