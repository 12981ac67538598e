//! Attachments as received: pointers (protobuf) into a decryptor fed the rest of the input,
//! file server URLs with their Display round trip, both decryptors on arbitrary blobs under
//! fixed keys (whole and split at a selected point must agree), and encrypt/decrypt round trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use session_proto::attachment::stream::{self, Domain, Kdf, StreamDecryptor};
use session_proto::attachment::{legacy, FileUrl, IncomingAttachment, LegacyDecryptor};
use session_proto::protos::AttachmentPointer;

const LEGACY_KEY: [u8; 64] = [0x42; 64];
const STREAM_KEY: [u8; 32] = [0x24; 32];

fn stream_chunked(key: &[u8], blob: &[u8], cut: usize) -> Option<Vec<u8>> {
    let mut dec = StreamDecryptor::new(key).ok()?;
    let mut out = Vec::new();
    let (a, b) = blob.split_at(cut.min(blob.len()));
    dec.update(a, &mut out).ok()?;
    dec.update(b, &mut out).ok()?;
    dec.finish(&mut out).ok()?;
    Some(out)
}

fn legacy_chunked(digest: &[u8], size: Option<u64>, blob: &[u8], cut: usize) -> Option<Vec<u8>> {
    let mut dec = LegacyDecryptor::new(&LEGACY_KEY, digest, size).ok()?;
    let mut out = Vec::new();
    let (a, b) = blob.split_at(cut.min(blob.len()));
    dec.update(a, &mut out).ok()?;
    dec.update(b, &mut out).ok()?;
    dec.finish(&mut out).ok()?;
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some(([sel, cut], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let cut = usize::from(*cut) * 7;
    match sel % 5 {
        0 => {
            // A pointer, then the rest of the input as the downloaded blob.
            let (ptr, blob) = rest.split_at(cut.min(rest.len()));
            let Ok(p) = AttachmentPointer::decode(ptr) else {
                return;
            };
            let Ok(att) = IncomingAttachment::from_pointer(&p) else {
                return;
            };
            let _ = format!("{att:?}");
            if let Ok(mut dec) = att.decryptor() {
                let mut out = Vec::new();
                if dec.update(blob, &mut out).is_ok() {
                    let _ = dec.finish(&mut out);
                }
            }
        }
        1 => {
            let Ok(s) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(url) = s.parse::<FileUrl>() {
                let text = url.to_string();
                let again: FileUrl = text.parse().expect("a formatted URL parses");
                assert_eq!(again.to_string(), text);
            }
        }
        2 => {
            let whole = stream::decrypt(&STREAM_KEY, rest).ok();
            assert_eq!(stream_chunked(&STREAM_KEY, rest, cut), whole);
        }
        3 => {
            let digest = [0x17; 32];
            let size = (sel & 8 != 0).then_some(rest.len() as u64 / 2);
            let whole = legacy::decrypt(&LEGACY_KEY, &digest, size, rest).ok();
            assert_eq!(legacy_chunked(&digest, size, rest, cut), whole);
        }
        _ => {
            let kdf = if sel & 8 == 0 {
                Kdf::Personal
            } else {
                Kdf::DomainByte
            };
            if let Ok((blob, key)) = stream::encrypt(&[0x61; 32], Domain::Attachment, kdf, rest) {
                assert_eq!(
                    stream_chunked(&key.key[..], &blob, cut).as_deref(),
                    Some(rest)
                );
            }
            if let Ok((blob, digest)) = legacy::encrypt(&LEGACY_KEY, &[0x19; 16], rest) {
                let size = Some(rest.len() as u64);
                assert_eq!(
                    legacy_chunked(&digest, size, &blob, cut).as_deref(),
                    Some(rest)
                );
            }
        }
    }
});
