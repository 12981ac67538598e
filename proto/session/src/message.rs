//! One-to-one messages, v1 ("Session protocol"): sign, seal, Envelope, WebSocketMessage, base64;
//! and every receiver check on the way back.
//!
//! Layers, outermost first (`||` is concatenation):
//!
//! ```text
//! store data = base64(WS)                                  standard alphabet, padded
//! WS   = WebSocketMessage{type=REQUEST(1), request{verb:"", path:"", body:ENV, id:0}}
//! ENV  = Envelope{type=SESSION_MESSAGE(6), timestamp=ms, sourceDevice=1, content=CT, proSig}
//! CT   = E(32) || MAC(16) || XSalsa20(P || A || SIG)       crypto_box_seal to Y
//! P    = pad160(Content)
//! SIG  = Ed25519(P || A || Y)                              by the sender
//! A    = sender's Ed25519 public key; Y = recipient's X25519 public key (Account ID minus 05)
//! ```
//!
//! The sealed box is libsodium's: an ephemeral X25519 key `E = e·B`, the key
//! `HSalsa20(X25519(e, Y), 0¹⁶)`, the nonce `BLAKE2b-192(E || Y)`, and XSalsa20-Poly1305 with the
//! MAC in front.
//!
//! `proSig`: [`encrypt_message`] writes a 64-byte decoy signature (a prime-order point `R`, then
//! a random scalar `s`) as libsession does for senders without Session Pro, so our envelopes look
//! like every other client's (see `decoy_signature` for where `R` comes from). [`encrypt_message_deterministic`] omits it, which
//! receivers accept and which the published test vector does.
//!
//! The receiver ([`decrypt_message`]) refuses: a "v2" payload (`00 02`), an Envelope `source`
//! that is neither empty nor 66 hex characters, a `proSig` that is present but not 64 bytes,
//! a ciphertext shorter than `48 + 32 + 64`, a box that does not open, a signature that does not
//! cover `M || A || our X25519 key`, a sender key with no X25519 form, a Content that does not
//! parse, and a `Content.sigTimestamp` that differs from `Envelope.timestamp` when both are
//! non-zero.

use base64::Engine as _;
use blake2::digest::consts::{U24, U32};
use blake2::digest::{FixedOutput, Mac};
use blake2::{Blake2b, Blake2bMac, Digest};
use curve25519_dalek::Scalar;
use ed25519_dalek::{Signature, VerifyingKey};
use prost::Message as _;
use rand_core::CryptoRngCore;
use salsa20::cipher::consts::U10;
use sha2::Sha512;
use x25519_dalek::{PublicKey, StaticSecret};
use xsalsa20poly1305::aead::AeadInPlace;
use xsalsa20poly1305::{KeyInit, XSalsa20Poly1305};
use zeroize::{Zeroize, Zeroizing};

use crate::account_id::{AccountId, Prefix};
use crate::err::{KeyError, MessageError};
use crate::keys::{ed25519_point_to_x25519, IdentityKeys};
use crate::padding;
use crate::protos::{
    data_message, envelope, typing_message, Content, DataMessage, Envelope, LokiProfile,
    TypingMessage,
};
use crate::protos::{websocket::web_socket_message, WebSocketMessage, WebSocketRequestMessage};

/// Bytes a sealed box adds: the ephemeral key and the MAC.
pub const SEAL_OVERHEAD: usize = 32 + 16;
/// Bytes the sender adds inside the box: its Ed25519 key and the signature.
pub const SENDER_OVERHEAD: usize = 32 + 64;
/// The shortest ciphertext a receiver looks at (`48 + 32 + 64`, an empty message).
pub const MIN_CIPHERTEXT: usize = SEAL_OVERHEAD + SENDER_OVERHEAD;
/// `Envelope.sourceDevice` as every client writes it.
pub const SOURCE_DEVICE: u32 = 1;
/// Key of the BLAKE2b hash that makes the deterministic variant's ephemeral seed.
const EPHEMERAL_HASH_KEY: &[u8] = b"SessionBoxEphemeralHashKey";

/// A one-to-one message after every check: who sent it and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The sender's standard Account ID (`05 || to_x25519(sender_ed25519)`).
    pub sender: AccountId,
    /// The sender's Ed25519 public key, from inside the sealed box.
    pub sender_ed25519: [u8; 32],
    /// `Envelope.timestamp`, in milliseconds since the Unix epoch.
    pub envelope_timestamp: u64,
    /// The decrypted, unpadded Content.
    pub content: Content,
}

/// The plaintext of a sealed box after the signature check (see [`decrypt_incoming`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Opened {
    /// The signed bytes, still padded if the sender padded them.
    pub plaintext: Vec<u8>,
    /// The sender's Ed25519 public key.
    pub sender_ed25519: [u8; 32],
    /// The sender's standard Account ID.
    pub sender: AccountId,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("plaintext_len", &self.plaintext.len())
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

/// A text message as desktop builds one: `Content{dataMessage{body, profile{displayName}},
/// sigTimestamp}`. Set `timestamp_ms` to the Envelope timestamp the message will be sent with.
pub fn text_content(body: &str, display_name: Option<&str>, timestamp_ms: u64) -> Content {
    Content {
        data_message: Some(DataMessage {
            body: Some(body.to_owned()),
            profile: display_name.map(|name| LokiProfile {
                display_name: Some(name.to_owned()),
                ..LokiProfile::default()
            }),
            ..DataMessage::default()
        }),
        sig_timestamp: Some(timestamp_ms),
        ..Content::default()
    }
}

/// How long a swarm keeps a typing notice, in milliseconds: desktop's
/// `TTL_DEFAULT.TYPING_MESSAGE` (20 s). A notice older than this is stale.
pub const TYPING_TTL_MS: u64 = 20_000;

/// A typing notice as desktop builds one: `Content{typingMessage{timestamp, action}, sigTimestamp}`
/// with `action` STARTED (0) or STOPPED (1). Not a disappearing message, no profile. Set
/// `timestamp_ms` to the Envelope timestamp the notice will be sent with.
pub fn typing_content(started: bool, timestamp_ms: u64) -> Content {
    let action = if started {
        typing_message::Action::Started
    } else {
        typing_message::Action::Stopped
    };
    Content {
        typing_message: Some(TypingMessage {
            timestamp: timestamp_ms,
            action: action as i32,
        }),
        sig_timestamp: Some(timestamp_ms),
        ..Content::default()
    }
}

/// What a received [`Content`] is to a text gateway (see [`classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// A message a person sees in the conversation: a `dataMessage` with a body, attachments, a
    /// quote, a link preview or a community invitation. Its text is `dataMessage.body` (possibly
    /// empty when it only carries things a text gateway does not show).
    Visible,
    /// A typing notice.
    Typing {
        /// True: started typing; false: stopped.
        started: bool,
        /// `TypingMessage.timestamp`, ms.
        timestamp_ms: u64,
    },
    /// Anything else, which is not a message of the conversation: read receipts,
    /// data-extraction notices, message request responses, unsend requests, call signalling,
    /// reactions, expiration-timer updates, group control messages, profile-only updates and
    /// empty contents. The string names which, for debug logs.
    Hidden(&'static str),
}

/// Sorts a received Content the way desktop's receiver does: a visible data message wins; then
/// a typing notice; everything else is hidden.
pub fn classify(content: &Content) -> ContentKind {
    if let Some(data) = &content.data_message {
        let expiration_update =
            data.flags.unwrap_or(0) & (data_message::Flags::ExpirationTimerUpdate as u32) != 0;
        if data.reaction.is_some() {
            return ContentKind::Hidden("reaction");
        }
        if data.group_update_message.is_some() {
            return ContentKind::Hidden("group control message");
        }
        if expiration_update {
            return ContentKind::Hidden("expiration timer update");
        }
        let shows_something = data.body.as_deref().is_some_and(|b| !b.is_empty())
            || !data.attachments.is_empty()
            || data.quote.is_some()
            || !data.preview.is_empty()
            || data.community_invitation.is_some();
        if shows_something {
            return ContentKind::Visible;
        }
    }
    if let Some(typing) = &content.typing_message {
        return match typing_message::Action::try_from(typing.action) {
            Ok(action) => ContentKind::Typing {
                started: action == typing_message::Action::Started,
                timestamp_ms: typing.timestamp,
            },
            Err(_) => ContentKind::Hidden("typing notice with an unknown action"),
        };
    }
    ContentKind::Hidden(if content.receipt_message.is_some() {
        "receipt"
    } else if content.data_extraction_notification.is_some() {
        "data extraction notice"
    } else if content.message_request_response.is_some() {
        "message request response"
    } else if content.unsend_request.is_some() {
        "unsend request"
    } else if content.call_message.is_some() {
        "call message"
    } else if content.data_message.is_some() {
        "data message without anything to show"
    } else {
        "empty content"
    })
}

/// Encrypts `content` for `recipient` and wraps it for a storage-server `store`: returns the raw
/// WebSocketMessage bytes (see [`to_store_data`] for the base64 form). The Envelope carries a
/// decoy `proSig`.
pub fn encrypt_message(
    sender: &IdentityKeys,
    recipient: &AccountId,
    content: &Content,
    timestamp_ms: u64,
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, MessageError> {
    let y = standard_key(recipient)?;
    let padded = pad_content(content);
    let mut eph = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut eph[..]);
    let (ct, sig) = seal_signed(sender, &y, &padded, StaticSecret::from(*eph))?;
    Ok(wrap(ct, timestamp_ms, Some(decoy_signature(&sig, rng))))
}

/// Like [`encrypt_message`] but reproducible: the ephemeral key comes from libsession's
/// `encrypt_for_recipient_deterministic` rule and no `proSig` is written. Only for tests and
/// self-addressed data: the same input always gives the same bytes.
pub fn encrypt_message_deterministic(
    sender: &IdentityKeys,
    recipient: &AccountId,
    content: &Content,
    timestamp_ms: u64,
) -> Result<Vec<u8>, MessageError> {
    let y = standard_key(recipient)?;
    let padded = pad_content(content);
    let (ct, _) = seal_signed(
        sender,
        &y,
        &padded,
        deterministic_ephemeral(sender, &y, &padded),
    )?;
    Ok(wrap(ct, timestamp_ms, None))
}

/// The `data` field of a storage-server `store` request: standard base64 with padding.
pub fn to_store_data(websocket_message: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(websocket_message)
}

/// Decrypts the `data` field of a retrieved message (base64 of a WebSocketMessage).
pub fn decrypt_store_data(own: &IdentityKeys, data_b64: &str) -> Result<Incoming, MessageError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data_b64.trim())
        .map_err(|_| MessageError::Base64)?;
    decrypt_message(own, &bytes)
}

/// Unwraps, decrypts and checks a one-to-one message given as raw WebSocketMessage bytes.
pub fn decrypt_message(own: &IdentityKeys, data: &[u8]) -> Result<Incoming, MessageError> {
    decrypt_message_with(own, data, &mut SenderKeys::new())
}

/// [`decrypt_message`] with a cache of senders' keys that passed the checks: a poller that
/// keeps one skips the Ed25519 decompression and the subgroup check (a scalar multiplication)
/// for every sender it has seen. The result is the same as without the cache.
pub fn decrypt_message_with(
    own: &IdentityKeys,
    data: &[u8],
    senders: &mut SenderKeys,
) -> Result<Incoming, MessageError> {
    // A v1 WebSocketMessage starts with a protobuf tag (0x08); 0x00 marks a versioned format.
    if let [0x00, version, ..] = data {
        return Err(if *version == 0x02 {
            MessageError::V2Unsupported
        } else {
            MessageError::UnknownVersion { version: *version }
        });
    }
    let ws = WebSocketMessage::decode(data).map_err(MessageError::WebSocket)?;
    let body = ws
        .request
        .and_then(|r| r.body)
        .ok_or(MessageError::NoRequestBody)?;
    let env = Envelope::decode(body.as_slice()).map_err(MessageError::Envelope)?;
    if let Some(source) = &env.source {
        let ok = source.is_empty()
            || (source.len() == AccountId::HEX_LEN
                && source.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return Err(MessageError::BadSource { len: source.len() });
        }
    }
    if let Some(sig) = &env.pro_sig {
        if sig.len() != 64 {
            return Err(MessageError::BadProSig { len: sig.len() });
        }
    }
    let ct = env.content.as_deref().ok_or(MessageError::NoContent)?;
    let opened = decrypt_incoming_with(own, ct, senders)?;
    let content =
        Content::decode(padding::unpad(&opened.plaintext)).map_err(MessageError::Content)?;
    if let Some(sig_ts) = content.sig_timestamp {
        if sig_ts != 0 && env.timestamp != 0 && sig_ts != env.timestamp {
            return Err(MessageError::TimestampMismatch {
                envelope: env.timestamp,
                content: sig_ts,
            });
        }
    }
    Ok(Incoming {
        sender: opened.sender,
        sender_ed25519: opened.sender_ed25519,
        envelope_timestamp: env.timestamp,
        content,
    })
}

/// libsession `encrypt_for_recipient`: signs `plaintext || A || Y` and seals
/// `plaintext || A || SIG` to `recipient_x25519` with a random ephemeral key. `plaintext` is sent
/// as given (one-to-one messages pad it first).
pub fn encrypt_for_recipient(
    sender: &IdentityKeys,
    recipient_x25519: &[u8; 32],
    plaintext: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, MessageError> {
    let mut eph = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut eph[..]);
    Ok(seal_signed(
        sender,
        recipient_x25519,
        plaintext,
        StaticSecret::from(*eph),
    )?
    .0)
}

/// libsession `encrypt_for_recipient_deterministic`: as [`encrypt_for_recipient`] with the
/// ephemeral key derived from the sender's seed, the recipient and the message.
pub fn encrypt_for_recipient_deterministic(
    sender: &IdentityKeys,
    recipient_x25519: &[u8; 32],
    plaintext: &[u8],
) -> Result<Vec<u8>, MessageError> {
    let eph = deterministic_ephemeral(sender, recipient_x25519, plaintext);
    Ok(seal_signed(sender, recipient_x25519, plaintext, eph)?.0)
}

/// libsession `decrypt_incoming`: opens a sealed box addressed to `own`, checks the sender's
/// signature over `M || A || own X25519 key`, and derives the sender's Account ID.
pub fn decrypt_incoming(own: &IdentityKeys, ciphertext: &[u8]) -> Result<Opened, MessageError> {
    decrypt_incoming_with(own, ciphertext, &mut SenderKeys::new())
}

/// Senders' keys that passed the checks of [`decrypt_incoming`] (a valid point, not of small
/// order, in the prime-order subgroup), by their Ed25519 bytes: the decompressed key and its
/// X25519 form. Bounded: at [`SenderKeys::MAX`] entries it starts afresh. Only keys that passed
/// are kept, and the checks depend on the key bytes alone, so a hit is exactly what the checks
/// would give again.
#[derive(Debug, Default, Clone)]
pub struct SenderKeys {
    keys: std::collections::HashMap<[u8; 32], (VerifyingKey, [u8; 32])>,
}

impl SenderKeys {
    /// Entries kept at most (about 250 bytes each).
    pub const MAX: usize = 256;

    /// An empty cache.
    pub fn new() -> SenderKeys {
        SenderKeys::default()
    }

    /// Keys cached.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks `sig` over `signed` by the sender key `a` and returns the key's X25519 form; the
    /// key's own checks (and its decompression) come from the cache when `a` passed before.
    /// The checks run in the uncached order, so errors are the same.
    fn verify(
        &mut self,
        a: &[u8; 32],
        signed: &[u8],
        sig: &Signature,
    ) -> Result<[u8; 32], MessageError> {
        if let Some((vk, x)) = self.keys.get(a) {
            vk.verify_strict(signed, sig)
                .map_err(|_| MessageError::BadSignature)?;
            return Ok(*x);
        }
        let vk = VerifyingKey::from_bytes(a)
            .map_err(|_| MessageError::BadSenderKey(KeyError::NotAPoint))?;
        vk.verify_strict(signed, sig)
            .map_err(|_| MessageError::BadSignature)?;
        // The key is decompressed already; convert it without a second square root.
        let x = ed25519_point_to_x25519(&vk.to_edwards()).map_err(MessageError::BadSenderKey)?;
        if self.keys.len() >= Self::MAX {
            self.keys.clear();
        }
        self.keys.insert(*a, (vk, x));
        Ok(x)
    }
}

/// [`decrypt_incoming`] with a [`SenderKeys`] cache.
pub fn decrypt_incoming_with(
    own: &IdentityKeys,
    ciphertext: &[u8],
    senders: &mut SenderKeys,
) -> Result<Opened, MessageError> {
    if ciphertext.len() < MIN_CIPHERTEXT {
        return Err(MessageError::TooShort {
            len: ciphertext.len(),
            min: MIN_CIPHERTEXT,
        });
    }
    let mut inner = open_sealed(own, ciphertext)?;
    let m_len = inner.len() - SENDER_OVERHEAD;
    let a: [u8; 32] = inner[m_len..m_len + 32]
        .try_into()
        .expect("inner is at least 96 bytes, so A is 32");
    let sig = Signature::from_bytes(
        inner[m_len + 32..]
            .try_into()
            .expect("the last 64 bytes are the signature"),
    );
    // The signed bytes are M || A || Y: replace SIG by our own key, in place.
    inner.truncate(m_len + 32);
    inner.extend_from_slice(own.x25519_public());
    let sender_x = senders.verify(&a, &inner, &sig)?;
    inner.truncate(m_len);
    Ok(Opened {
        plaintext: inner,
        sender_ed25519: a,
        sender: AccountId::standard(sender_x),
    })
}

/// The X25519 key of a standard Account ID, or an error for any other prefix.
fn standard_key(recipient: &AccountId) -> Result<[u8; 32], MessageError> {
    match recipient.prefix() {
        Some(Prefix::Standard) => Ok(*recipient.key()),
        _ => Err(MessageError::RecipientNotStandard {
            prefix: recipient.prefix_byte(),
        }),
    }
}

fn pad_content(content: &Content) -> Zeroizing<Vec<u8>> {
    let len = content.encoded_len();
    let mut buf = Zeroizing::new(Vec::with_capacity(padding::padded_len(len)));
    content
        .encode(&mut *buf)
        .expect("a Vec grows to fit, so encoding cannot run out of room");
    let padded_len = padding::padded_len(len);
    buf.push(padding::TERMINATOR);
    buf.resize(padded_len, 0);
    buf
}

/// `e = SHA-512(BLAKE2b-256(key = "SessionBoxEphemeralHashKey", seed || Y || message))[..32]`,
/// i.e. `crypto_box_seed_keypair` of that hash.
fn deterministic_ephemeral(sender: &IdentityKeys, y: &[u8; 32], message: &[u8]) -> StaticSecret {
    let mut mac = <Blake2bMac<U32> as Mac>::new_from_slice(EPHEMERAL_HASH_KEY)
        .expect("a 26-byte key is within BLAKE2b's 64-byte limit");
    Mac::update(&mut mac, sender.seed());
    Mac::update(&mut mac, y);
    Mac::update(&mut mac, message);
    let mut seed: [u8; 32] = mac.finalize_fixed().into();
    let mut hash: [u8; 64] = Sha512::digest(seed).into();
    seed.zeroize();
    let mut sk = [0u8; 32];
    sk.copy_from_slice(&hash[..32]);
    hash.zeroize();
    let secret = StaticSecret::from(sk);
    sk.zeroize();
    secret
}

/// Signs and seals `plaintext` with the ephemeral secret `eph`; returns the sealed box and the
/// signature inside it.
fn seal_signed(
    sender: &IdentityKeys,
    y: &[u8; 32],
    plaintext: &[u8],
    eph: StaticSecret,
) -> Result<(Vec<u8>, Signature), MessageError> {
    let a = sender.ed25519_public();
    let sig = sender.sign_parts(&[plaintext, a, y]);
    let eph_pk = PublicKey::from(&eph).to_bytes();
    let shared = eph.diffie_hellman(&PublicKey::from(*y));
    if !shared.was_contributory() {
        return Err(MessageError::WeakRecipientKey);
    }
    let cipher = box_cipher(shared.as_bytes());
    let nonce = seal_nonce(&eph_pk, y);
    // E || MAC || (P || A || SIG), encrypted in place after the 48-byte header.
    let mut out = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len() + SENDER_OVERHEAD);
    out.extend_from_slice(&eph_pk);
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(plaintext);
    out.extend_from_slice(a);
    out.extend_from_slice(&sig.to_bytes());
    let tag = cipher
        .encrypt_in_place_detached(&nonce, b"", &mut out[SEAL_OVERHEAD..])
        .expect("XSalsa20 encrypts messages far longer than any Vec");
    out[32..SEAL_OVERHEAD].copy_from_slice(&tag);
    Ok((out, sig))
}

/// `crypto_box_seal_open`: returns the plaintext or [`MessageError::SealOpen`].
fn open_sealed(own: &IdentityKeys, ciphertext: &[u8]) -> Result<Vec<u8>, MessageError> {
    let eph_pk: [u8; 32] = ciphertext[..32]
        .try_into()
        .expect("callers check the length first");
    let shared = own.x25519_secret().diffie_hellman(&PublicKey::from(eph_pk));
    if !shared.was_contributory() {
        return Err(MessageError::SealOpen);
    }
    let cipher = box_cipher(shared.as_bytes());
    let nonce = seal_nonce(&eph_pk, own.x25519_public());
    let tag = xsalsa20poly1305::Tag::clone_from_slice(&ciphertext[32..SEAL_OVERHEAD]);
    let mut buf = ciphertext[SEAL_OVERHEAD..].to_vec();
    cipher
        .decrypt_in_place_detached(&nonce, b"", &mut buf, &tag)
        .map_err(|_| MessageError::SealOpen)?;
    Ok(buf)
}

/// `crypto_box_beforenm`: the XSalsa20-Poly1305 key is `HSalsa20(shared, 0¹⁶)`.
fn box_cipher(shared: &[u8; 32]) -> XSalsa20Poly1305 {
    let mut key = salsa20::hsalsa::<U10>(shared.into(), &Default::default());
    let cipher = XSalsa20Poly1305::new(&key);
    key.zeroize();
    cipher
}

/// The sealed-box nonce: `BLAKE2b-192(E || Y)`.
fn seal_nonce(eph_pk: &[u8; 32], y: &[u8; 32]) -> xsalsa20poly1305::Nonce {
    let mut h = Blake2b::<U24>::new();
    Digest::update(&mut h, eph_pk);
    Digest::update(&mut h, y);
    h.finalize()
}

/// A 64-byte decoy `proSig`: a valid-looking `R || s` that verifies against nothing.
///
/// libsession makes `R = r·B` for a fresh random scalar `r`, which costs one more base-point
/// multiplication per message (about a fifth of the whole encrypt). We take `R` from the
/// signature inside the sealed box instead: it is `r·B` for the signer's secret nonce `r`,
/// so to everyone who cannot open the box it is a uniformly random prime-order point, exactly
/// like libsession's. Only the recipient can see the two are equal, and it learns nothing: an
/// Ed25519 `R` is public in every signature, and whether the sender has Session Pro shows in the
/// Content anyway. `s` is a fresh random scalar, unrelated to the real signature's.
fn decoy_signature(inner: &Signature, rng: &mut impl CryptoRngCore) -> [u8; 64] {
    let mut wide = Zeroizing::new([0u8; 64]);
    rng.fill_bytes(&mut wide[..]);
    let s = Scalar::from_bytes_mod_order_wide(&wide);
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&inner.r_bytes()[..]);
    out[32..].copy_from_slice(s.as_bytes());
    out
}

/// Envelope and WebSocketMessage around a sealed box.
fn wrap(ct: Vec<u8>, timestamp_ms: u64, pro_sig: Option<[u8; 64]>) -> Vec<u8> {
    wrap_sealed(ct, timestamp_ms, Some(SOURCE_DEVICE), pro_sig)
}

/// The Envelope (type SessionMessage) and WebSocketMessage request around a sealed box: the
/// shape of one-to-one messages and of the legacy config wrapper alike.
pub(crate) fn wrap_sealed(
    ct: Vec<u8>,
    timestamp_ms: u64,
    source_device: Option<u32>,
    pro_sig: Option<[u8; 64]>,
) -> Vec<u8> {
    let env = Envelope {
        r#type: envelope::Type::SessionMessage as i32,
        source: None,
        timestamp: timestamp_ms,
        source_device,
        content: Some(ct),
        server_timestamp: None,
        pro_sig: pro_sig.map(|s| s.to_vec()),
    };
    let ws = WebSocketMessage {
        r#type: Some(web_socket_message::Type::Request as i32),
        request: Some(WebSocketRequestMessage {
            verb: Some(String::new()),
            path: Some(String::new()),
            body: Some(env.encode_to_vec()),
            headers: Vec::new(),
            id: Some(0),
        }),
        response: None,
    };
    ws.encode_to_vec()
}
