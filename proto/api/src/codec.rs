//! The codec of every `sessiond.v1` method: prost encoding, and decoding that answers
//! INVALID_ARGUMENT (not tonic's INTERNAL) for bytes that are not a valid message, such as bad
//! protobuf or a string field that is not UTF-8: it is the caller's input that is wrong.
//!
//! The same codec serves the generated clients, so a client that gets an undecodable response
//! sees INVALID_ARGUMENT too; that can only happen with a daemon of another API version.

use std::collections::HashMap;
use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, ProstCodec};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `google.rpc.ErrorInfo` domain of every sessiond error.
pub const ERROR_DOMAIN: &str = "sessiond.v1";
/// The ErrorInfo reason of a request that is not a valid message.
pub const REASON_MALFORMED_MESSAGE: &str = "MALFORMED_MESSAGE";

/// [`ProstCodec`] with [`MessageDecoder`]: named by tonic-build's `codec_path`.
#[derive(Debug)]
pub struct SessiondCodec<T, U> {
    prost: ProstCodec<T, U>,
}

impl<T, U> Default for SessiondCodec<T, U> {
    fn default() -> Self {
        SessiondCodec {
            prost: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for SessiondCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = MessageDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.prost.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        MessageDecoder(PhantomData)
    }
}

/// Decodes a `U`; bytes that are not one are INVALID_ARGUMENT with an ErrorInfo
/// ([`REASON_MALFORMED_MESSAGE`]).
#[derive(Debug)]
pub struct MessageDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for MessageDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| malformed(&e))
    }
}

/// The status for a message that did not decode.
pub fn malformed(e: &prost::DecodeError) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        format!(
            "the request is not a valid message of this method (bad protobuf or a string that \
             is not UTF-8): {e}"
        ),
        ErrorDetails::with_error_info(REASON_MALFORMED_MESSAGE, ERROR_DOMAIN, HashMap::new()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::SendMessageRequest;

    /// Decodes `bytes` as `U` the way the codec does.
    // tonic's Status is what a codec answers; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    fn decode_with<U: Message + Default>(bytes: &[u8]) -> Result<U, Status> {
        U::decode(bytes).map_err(|e| malformed(&e))
    }

    #[test]
    fn bad_protobuf_and_bad_utf8_are_invalid_argument() {
        // Field 1 (identity, a string) with bytes that are not UTF-8.
        let err = decode_with::<SendMessageRequest>(&[0x0a, 0x02, 0xff, 0xfe]).expect_err("utf8");
        assert_eq!(err.code(), Code::InvalidArgument);
        let info = err.get_error_details();
        let info = info.error_info().expect("error info");
        assert_eq!(info.reason, REASON_MALFORMED_MESSAGE);
        assert_eq!(info.domain, ERROR_DOMAIN);
        // A length that runs past the end.
        let err = decode_with::<SendMessageRequest>(&[0x0a, 0x20, b'a']).expect_err("truncated");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(decode_with::<SendMessageRequest>(&[0x0a, 0x01, b'a']).is_ok());
    }
}
