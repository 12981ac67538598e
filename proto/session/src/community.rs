//! Communities (open groups on SOGS servers), spec communities-and-files.md Part A: pure code
//! for URLs, blinded keys, request signing, room messages and community DMs.
//!
//! # Layout
//! - [`url`]: [`CommunityUrl`] and [`ServerUrl`]: parsing and canonical forms.
//! - [`blinding`]: blind15 keys and signatures, blind25, matching blinded IDs to Account IDs.
//! - [`auth`]: the X-SOGS-* request headers: [`sign_request`], [`parse_auth`] on a server.
//! - [`api`]: JSON bodies of the SOGS API subset, request paths, the poll batch.
//! - [`room`]: posting ([`encode_room_message`]) and reading ([`read_room_message`]).
//! - [`dm`]: community DMs through the blinded inbox ([`encrypt_dm`], [`decrypt_dm`]).

pub mod api;
pub mod auth;
pub mod blinding;
pub mod dm;
pub mod room;
pub mod url;

pub use api::{RoomMessage, RoomPaths, SubRequest, SubResponse};
pub use auth::{parse_auth, sign_request, AuthHeaders, ParsedAuth, RequestSigner, SogsAuth};
pub use blinding::{
    blind15_candidates, blind25_id, find_blinded_owner, matches_blinded, Blind15Keys, Blind15Nonce,
    Blind25Keys,
};
pub use dm::{decrypt_dm, encrypt_dm, OpenedDm};
pub use room::{encode_room_message, read_room_message, RoomPost, RoomUpdate};
pub use url::{CommunityUrl, Scheme, ServerUrl};

#[cfg(test)]
mod tests;
