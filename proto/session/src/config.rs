//! Account config messages ("libsession configs"): the format, the merge, the encryption and
//! the typed views that Session clients share through the account's own swarm (user configs,
//! namespaces 2-5) and a group's swarm (group info and members, signed).
//!
//! Pipeline of one push, outermost last:
//!
//! ```text
//! ConfigMessage (bt dict: seqno, data, diffs, [signature])        message.rs, data.rs, bt.rs
//!   → 'z' + zstd level 1 when smaller → 00… prefix padding          crypt.rs
//!   → XChaCha20-Poly1305, key and nonce derived from content         crypt.rs
//!   → one message, or 'm' parts when larger than 76,800 bytes        crypt.rs
//!   → (user configs, single part) legacy protobuf wrapper           wrap.rs
//! ```
//!
//! # Layout
//! - [`bt`]: strict bt-encoding of any value.
//! - [`data`]: the data model (scalars, sets, dicts), diffs, diff replay, typed field helpers.
//! - [`message`]: [`message::ConfigMessage`]: parse, serialize, hash, sign, increment, merge.
//! - [`crypt`]: keys, deterministic encryption, padding, zstd, multipart parts.
//! - [`wrap`]: the legacy protobuf wrapper of user configs.
//! - [`object`]: [`object::Config`], one config as a client keeps it (push state, hashes, dump).
//! - [`user_profile`], [`contacts`], [`convo_info_volatile`], [`user_groups`]: typed views of
//!   the four user configs over [`data::Data`]; keys they do not know are never touched.

pub mod bt;
pub mod contacts;
pub mod convo_info_volatile;
pub mod crypt;
pub mod data;
pub mod message;
pub mod object;
pub mod user_groups;
pub mod user_profile;
pub mod wrap;

pub use data::{Data, Diff, DiffOp, Field, Scalar};
pub use message::{ConfigMessage, Merged};
pub use object::{Config, ConfigKeys, ConfigType, MergeReport, Push, State};
