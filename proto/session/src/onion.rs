//! Onion requests (network.md §5): per-hop encryption, the `[len][blob][json]` frame, the
//! client builder, the snode-side peel and reply encryption.
//!
//! A client wraps a payload in one layer per node: the destination's layer innermost, the
//! guard's outermost. Each snode on the path [`peel()`]s one layer with its X25519 secret and
//! learns only where to send the rest; the destination (a snode, or a server behind the last
//! relay) answers with a reply encrypted once, under the innermost layer's key, which the
//! client opens with the [`ReplyHandle`] the builder returned.
//!
//! # Layout
//! - [`crypto`]: X25519, key derivation and AEAD per [`EncType`].
//! - [`build`]: the client side: [`build_request`] and the reply handle.
//! - [`peel`](mod@peel): the snode side: [`peel()`], destination replies, the server-side open.

pub mod build;
pub mod crypto;
pub mod peel;

pub use build::{
    build_request, build_request_with, Destination, Hop, LayerSecret, OnionDraft, OnionRequest,
    ReplyHandle, ServerDestination, SnodeReply,
};
pub use crypto::{x25519, x25519_public, EncType, LayerKey, PeerKey};
pub use peel::{
    open_layer, open_server_request, peel, reply_plaintext, seal_snode_reply, FinalRequest,
    NodeKeys, OpenedLayer, Peeled, ProxyRequest, RelayHop,
};

use crate::err::OnionError;

/// Most hops a request may take before a snode refuses it (`hop_no` > this → 400).
pub const MAX_ONION_HOPS: u32 = 15;

/// Appends `frame(blob, json) = u32_le(len(blob)) ‖ blob ‖ json` to `out`.
///
/// Panics only if `blob` is 4 GiB or more, which no caller can build (bodies are capped far
/// below that).
pub fn write_frame(out: &mut Vec<u8>, blob: &[u8], json: &[u8]) {
    let len = u32::try_from(blob.len()).expect("onion blobs are far below 4 GiB");
    out.reserve(4 + blob.len() + json.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(blob);
    out.extend_from_slice(json);
}

/// `u32_le(len(blob)) ‖ blob ‖ json`.
pub fn encode_frame(blob: &[u8], json: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, blob, json);
    out
}

/// Splits a frame into `(blob, json)`; the JSON runs to the end and is not parsed here.
/// [`OnionError::FrameTruncated`] if the buffer is shorter than its length prefix says.
pub fn decode_frame(buf: &[u8]) -> Result<(&[u8], &[u8]), OnionError> {
    let Some((len, rest)) = buf.split_first_chunk::<4>() else {
        return Err(OnionError::FrameTruncated {
            needed: 4,
            got: buf.len(),
        });
    };
    let len = u32::from_le_bytes(*len) as usize;
    if len > rest.len() {
        return Err(OnionError::FrameTruncated {
            needed: len.saturating_add(4),
            got: buf.len(),
        });
    }
    Ok(rest.split_at(len))
}

/// Whether a snode may proxy to `target`: starts `/oxen/` or `/loki/`, ends `/lsrpc`, no `?`.
pub fn is_target_allowed(target: &str) -> bool {
    (target.starts_with("/oxen/") || target.starts_with("/loki/"))
        && target.ends_with("/lsrpc")
        && !target.contains('?')
}

#[cfg(test)]
mod tests;
