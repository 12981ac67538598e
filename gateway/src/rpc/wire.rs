//! Wire-level fixes between the HTTP/2 connection and tonic, so stock clients get conventional
//! answers:
//!
//! - [`AuthorityFix`]: stock gRPC clients on a Unix socket (grpcio, grpcurl, grpc-java) send the
//!   socket's path (or its percent-encoding) as `:authority`. The `h2` crate under hyper parses
//!   `:authority` as a URI authority (`h2::server`, "malformed headers: malformed authority") and
//!   resets the stream with PROTOCOL_ERROR, before any service sees the request. The wrapper
//!   reads the client's HTTP/2 frames, decodes each header block (HPACK, with the client's
//!   dynamic table), replaces an `:authority` that is not a valid authority with `localhost`
//!   (which is what a Unix socket means) and re-encodes the block for the server. All other
//!   frames pass through untouched; what it cannot parse it passes through as it is, so the
//!   server still answers protocol errors itself.
//! - [`StatusFixLayer`]: tonic answers a request message over the size limit with OUT_OF_RANGE;
//!   the gRPC convention is RESOURCE_EXHAUSTED, with an ErrorInfo saying so.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;
use tonic::{Code, Status};

use super::err::{status, REASON_MESSAGE_TOO_LARGE};

/// The largest request message the daemon decodes (tonic's default, stated here so the
/// RESOURCE_EXHAUSTED answer can say it).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// What `:authority` becomes when a client sent one that is not an authority.
pub const UNIX_AUTHORITY: &[u8] = b"localhost";

const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const FRAME_HEADERS: u8 = 0x1;
const FRAME_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// The frame size every HTTP/2 peer accepts (SETTINGS_MAX_FRAME_SIZE's initial value).
const MAX_FRAME: usize = 16_384;
/// A header block longer than this is not rewritten (passed through for the server to judge).
const MAX_BLOCK: usize = 256 * 1024;
/// A frame longer than this is passed through without being looked at.
const MAX_LOOKED_AT_FRAME: usize = 1 << 24;

/// An HTTP/2 server-side stream whose client header blocks get a valid `:authority`.
pub struct AuthorityFix<T> {
    inner: T,
    /// Bytes read from the client, not yet looked at.
    raw: Vec<u8>,
    /// Bytes for the server, not yet read by it.
    out: Vec<u8>,
    preface_seen: bool,
    /// Once something could not be parsed: pass everything through.
    passthrough: bool,
    /// A header block waiting for its CONTINUATION frames.
    pending: Option<Pending>,
    decoder: loona_hpack::Decoder<'static>,
    encoder: loona_hpack::Encoder<'static>,
    eof: bool,
}

struct Pending {
    stream: [u8; 4],
    end_stream: bool,
    priority: Option<[u8; 5]>,
    block: Vec<u8>,
    /// The frames as the client sent them, for passing through if the block is bad.
    original: Vec<u8>,
}

impl<T> std::fmt::Debug for AuthorityFix<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityFix")
            .field("passthrough", &self.passthrough)
            .finish_non_exhaustive()
    }
}

impl<T> AuthorityFix<T> {
    /// Wraps the server side of one connection.
    pub fn new(inner: T) -> AuthorityFix<T> {
        AuthorityFix {
            inner,
            raw: Vec::new(),
            out: Vec::new(),
            preface_seen: false,
            passthrough: false,
            pending: None,
            decoder: loona_hpack::Decoder::new(),
            encoder: loona_hpack::Encoder::new(),
            eof: false,
        }
    }

    /// Moves what can be looked at from `raw` to `out`.
    fn process(&mut self) {
        loop {
            if self.passthrough {
                self.out.append(&mut self.raw);
                return;
            }
            if !self.preface_seen {
                if self.raw.len() < PREFACE_LEN {
                    return;
                }
                self.out.extend(self.raw.drain(..PREFACE_LEN));
                self.preface_seen = true;
                continue;
            }
            if self.raw.len() < FRAME_HEADER_LEN {
                return;
            }
            let len = usize::from(self.raw[0]) << 16
                | usize::from(self.raw[1]) << 8
                | usize::from(self.raw[2]);
            if len > MAX_LOOKED_AT_FRAME {
                self.give_up();
                continue;
            }
            if self.raw.len() < FRAME_HEADER_LEN + len {
                return;
            }
            let frame: Vec<u8> = self.raw.drain(..FRAME_HEADER_LEN + len).collect();
            self.frame(frame);
        }
    }

    /// Stops rewriting: what is pending and everything after passes through as the client sent
    /// it.
    fn give_up(&mut self) {
        self.passthrough = true;
        if let Some(p) = self.pending.take() {
            self.out.extend(p.original);
        }
    }

    fn frame(&mut self, frame: Vec<u8>) {
        let kind = frame[3];
        let flags = frame[4];
        let mut stream = [0u8; 4];
        stream.copy_from_slice(&frame[5..9]);
        let payload = &frame[FRAME_HEADER_LEN..];
        match kind {
            FRAME_HEADERS if self.pending.is_none() => {
                let Some((priority, fragment)) = headers_payload(flags, payload) else {
                    self.out.extend(&frame);
                    self.give_up();
                    return;
                };
                let pending = Pending {
                    stream,
                    end_stream: flags & FLAG_END_STREAM != 0,
                    priority,
                    block: fragment.to_vec(),
                    original: frame.clone(),
                };
                self.pending = Some(pending);
                if flags & FLAG_END_HEADERS != 0 {
                    self.finish_block();
                }
            }
            FRAME_CONTINUATION => match self.pending.as_mut() {
                Some(p) if p.stream == stream && p.block.len() + payload.len() <= MAX_BLOCK => {
                    p.block.extend_from_slice(payload);
                    p.original.extend_from_slice(&frame);
                    if flags & FLAG_END_HEADERS != 0 {
                        self.finish_block();
                    }
                }
                _ => {
                    self.give_up();
                    self.out.extend(frame);
                }
            },
            _ if self.pending.is_some() => {
                // Anything but CONTINUATION inside a header block is the client's protocol
                // error; the server says so.
                self.give_up();
                self.out.extend(frame);
            }
            _ => self.out.extend(frame),
        }
    }

    /// Decodes the pending block, fixes `:authority`, and emits it re-encoded.
    fn finish_block(&mut self) {
        let Some(p) = self.pending.take() else {
            return;
        };
        let headers = match self.decoder.decode(&p.block) {
            Ok(h) => h,
            Err(_) => {
                // Not decodable: the server's own decoder will say so.
                self.out.extend(p.original);
                self.passthrough = true;
                return;
            }
        };
        let headers: Vec<(Vec<u8>, Vec<u8>)> = headers
            .into_iter()
            .map(|(name, value)| {
                if name == b":authority" && http::uri::Authority::try_from(&value[..]).is_err() {
                    (name, UNIX_AUTHORITY.to_vec())
                } else {
                    (name, value)
                }
            })
            .collect();
        let block = self
            .encoder
            .encode(headers.iter().map(|(n, v)| (&n[..], &v[..])));
        self.emit_block(&p, &block);
    }

    /// Writes a header block as a HEADERS frame and CONTINUATION frames.
    fn emit_block(&mut self, p: &Pending, block: &[u8]) {
        let prefix: &[u8] = p.priority.as_ref().map_or(&[], |b| &b[..]);
        let first_room = MAX_FRAME - prefix.len();
        let (first, mut rest) = block.split_at(block.len().min(first_room));
        let mut flags = 0;
        if p.end_stream {
            flags |= FLAG_END_STREAM;
        }
        if p.priority.is_some() {
            flags |= FLAG_PRIORITY;
        }
        if rest.is_empty() {
            flags |= FLAG_END_HEADERS;
        }
        let mut payload = prefix.to_vec();
        payload.extend_from_slice(first);
        self.push_frame(FRAME_HEADERS, flags, p.stream, &payload);
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME));
            rest = tail;
            let flags = if rest.is_empty() { FLAG_END_HEADERS } else { 0 };
            self.push_frame(FRAME_CONTINUATION, flags, p.stream, chunk);
        }
    }

    fn push_frame(&mut self, kind: u8, flags: u8, stream: [u8; 4], payload: &[u8]) {
        let len = payload.len();
        // Every payload here is at most MAX_FRAME bytes, so it fits 24 bits.
        self.out
            .extend([(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
        self.out.extend(stream);
        self.out.extend_from_slice(payload);
    }
}

/// The priority bytes and the header block fragment of a HEADERS frame's payload; `None` if
/// the padding or priority do not fit.
fn headers_payload(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let mut body = payload;
    let mut pad = 0usize;
    if flags & FLAG_PADDED != 0 {
        let (&n, rest) = body.split_first()?;
        pad = usize::from(n);
        body = rest;
    }
    let mut priority = None;
    if flags & FLAG_PRIORITY != 0 {
        let bytes: [u8; 5] = body.get(..5)?.try_into().ok()?;
        priority = Some(bytes);
        body = &body[5..];
    }
    let end = body.len().checked_sub(pad)?;
    Some((priority, &body[..end]))
}

impl<T: AsyncRead + Unpin> AsyncRead for AuthorityFix<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out[..n]);
                this.out.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let got = read.filled();
                    if got.is_empty() {
                        // The client is done: what was held back goes to the server as it is.
                        this.eof = true;
                        this.give_up();
                        this.out.append(&mut this.raw);
                    } else {
                        this.raw.extend_from_slice(got);
                        this.process();
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<T: Connected> Connected for AuthorityFix<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// The layer of [`StatusFix`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusFixLayer;

impl<S> tower::Layer<S> for StatusFixLayer {
    type Service = StatusFix<S>;

    fn layer(&self, inner: S) -> StatusFix<S> {
        StatusFix { inner }
    }
}

/// Rewrites tonic's OUT_OF_RANGE for an oversized request message to RESOURCE_EXHAUSTED with
/// an ErrorInfo (reason [`REASON_MESSAGE_TOO_LARGE`], metadata `limit_bytes`).
#[derive(Debug, Clone)]
pub struct StatusFix<S> {
    inner: S,
}

/// How tonic's message begins when a request message is over the limit.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";

impl<S, B, RB> tower::Service<http::Request<B>> for StatusFix<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            fix_too_large(resp.headers_mut());
            Ok(resp)
        })
    }
}

/// Rewrites the status in a trailers-only response's headers if it is tonic's size error.
fn fix_too_large(headers: &mut http::HeaderMap) {
    let Some(found) = Status::from_header_map(headers) else {
        return;
    };
    if found.code() != Code::OutOfRange || !found.message().starts_with(TONIC_TOO_LARGE) {
        return;
    }
    let mut meta = HashMap::new();
    meta.insert("limit_bytes".to_owned(), MAX_REQUEST_BYTES.to_string());
    let fixed = status(
        Code::ResourceExhausted,
        format!(
            "the request message is larger than the daemon accepts ({MAX_REQUEST_BYTES} bytes): \
             {}",
            found.message()
        ),
        REASON_MESSAGE_TOO_LARGE,
        None,
        meta,
    );
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    if fixed.add_header(headers).is_err() {
        tracing::debug!("could not write the RESOURCE_EXHAUSTED status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt;

    #[test]
    fn tonics_size_error_becomes_resource_exhausted() {
        let mut headers = http::HeaderMap::new();
        Status::out_of_range(format!("{TONIC_TOO_LARGE}: found 5000000 bytes"))
            .add_header(&mut headers)
            .expect("headers");
        fix_too_large(&mut headers);
        let s = Status::from_header_map(&headers).expect("a status");
        assert_eq!(s.code(), Code::ResourceExhausted);
        let d = s.get_error_details();
        let info = d.error_info().expect("error info");
        assert_eq!(info.reason, REASON_MESSAGE_TOO_LARGE);
        // Other OUT_OF_RANGE answers (a seq past the log's end) stay.
        let mut headers = http::HeaderMap::new();
        Status::out_of_range("seq past the end")
            .add_header(&mut headers)
            .expect("headers");
        fix_too_large(&mut headers);
        let s = Status::from_header_map(&headers).expect("a status");
        assert_eq!(s.code(), Code::OutOfRange);
    }

    #[test]
    fn headers_payload_strips_padding_and_keeps_priority() {
        assert_eq!(headers_payload(0, b"abc"), Some((None, &b"abc"[..])));
        assert_eq!(
            headers_payload(FLAG_PADDED, b"\x02abcXX"),
            Some((None, &b"abc"[..]))
        );
        assert_eq!(
            headers_payload(FLAG_PRIORITY, b"12345abc"),
            Some((Some(*b"12345"), &b"abc"[..]))
        );
        assert_eq!(headers_payload(FLAG_PADDED, b"\x09abc"), None);
        assert_eq!(headers_payload(FLAG_PRIORITY, b"123"), None);
    }
}
