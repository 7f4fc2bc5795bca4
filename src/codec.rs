//! Framing for Waku's request/response protocols: an unsigned-varint length prefix followed by
//! one protobuf message.
//!
//! A server reads exactly one frame per stream and never more bytes than that frame holds (a
//! client may keep its side open). A stream that closes before its first byte is not an error
//! for the reader ([`read_frame`] returns `Ok(None)`), since peers probe protocols that way.
//! Every length is checked against a maximum before any payload byte is buffered, so a peer
//! cannot make us allocate more than the limit.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use prost::Message;

/// The largest frame accepted when a protocol does not set its own limit: a full store page of
/// 100 messages at the 150 KiB message limit, plus room for the envelope.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// An unsigned varint for a u64 never needs more than this many bytes.
const MAX_VARINT_LEN: usize = 10;

/// Why a frame could not be read or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Reading or writing the stream failed.
    #[error("stream error: {0}")]
    Io(#[from] io::Error),
    /// The length prefix is not a valid unsigned varint.
    #[error("malformed length prefix: {0}")]
    BadLengthPrefix(&'static str),
    /// The frame announces more bytes than allowed.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    Oversized {
        /// Announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The stream or buffer ended inside a frame.
    #[error("stream ended after {got} of {expected} frame bytes")]
    Truncated {
        /// Bytes the frame needed (prefix included, as far as it was known).
        expected: usize,
        /// Bytes available.
        got: usize,
    },
    /// The frame's bytes are not the expected protobuf.
    #[error("frame is not a valid protobuf message: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// Encodes `message` as one frame.
pub fn encode_frame<M: Message>(message: &M) -> Vec<u8> {
    message.encode_length_delimited_to_vec()
}

/// Decodes the varint at the start of `buf`: `Ok(Some((value, prefix_len)))`, or `Ok(None)` if
/// `buf` ends before the varint does.
fn decode_varint(buf: &[u8]) -> Result<Option<(u64, usize)>, CodecError> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().take(MAX_VARINT_LEN).enumerate() {
        let bits = u64::from(byte & 0x7f);
        if i == MAX_VARINT_LEN - 1 && byte > 1 {
            return Err(CodecError::BadLengthPrefix("value does not fit in 64 bits"));
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            // A multi-byte varint ending in a zero byte is not minimal; unsigned-varint forbids it.
            if i > 0 && byte == 0 {
                return Err(CodecError::BadLengthPrefix("not minimally encoded"));
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= MAX_VARINT_LEN {
        return Err(CodecError::BadLengthPrefix("longer than 10 bytes"));
    }
    Ok(None)
}

fn check_len(len: u64, max: usize) -> Result<usize, CodecError> {
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(CodecError::Oversized { len, max }),
    }
}

/// Decodes the first frame of `buf`, returning the message and the bytes consumed.
pub fn decode_frame<M: Message + Default>(
    buf: &[u8],
    max_len: usize,
) -> Result<(M, usize), CodecError> {
    let (len, prefix) = decode_varint(buf)?.ok_or(CodecError::Truncated {
        expected: buf.len() + 1,
        got: buf.len(),
    })?;
    let len = check_len(len, max_len)?;
    let end = prefix + len;
    let body = buf.get(prefix..end).ok_or(CodecError::Truncated {
        expected: end,
        got: buf.len(),
    })?;
    Ok((M::decode(body)?, end))
}

/// Reads exactly one frame's body from `io`. Returns `Ok(None)` if the stream closed before
/// its first byte.
pub async fn read_frame<R: AsyncRead + Unpin>(
    io: &mut R,
    max_len: usize,
) -> Result<Option<Vec<u8>>, CodecError> {
    let mut prefix = [0u8; MAX_VARINT_LEN];
    let mut filled = 0;
    let (len, _) = loop {
        let n = io.read(&mut prefix[filled..=filled]).await?;
        if n == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(CodecError::Truncated {
                expected: filled + 1,
                got: filled,
            });
        }
        filled += 1;
        if let Some(decoded) = decode_varint(&prefix[..filled])? {
            break decoded;
        }
    };
    let len = check_len(len, max_len)?;
    let mut body = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match io.read(&mut body[got..]).await? {
            0 => {
                return Err(CodecError::Truncated {
                    expected: filled + len,
                    got: filled + got,
                });
            }
            n => got += n,
        }
    }
    Ok(Some(body))
}

/// Reads one frame and decodes it as `M`. `Ok(None)` if the stream closed before any byte.
pub async fn read_message<M: Message + Default, R: AsyncRead + Unpin>(
    io: &mut R,
    max_len: usize,
) -> Result<Option<M>, CodecError> {
    match read_frame(io, max_len).await? {
        Some(body) => Ok(Some(M::decode(body.as_slice())?)),
        None => Ok(None),
    }
}

/// Writes `message` as one frame and flushes.
pub async fn write_message<M: Message, W: AsyncWrite + Unpin>(
    io: &mut W,
    message: &M,
) -> Result<(), CodecError> {
    io.write_all(&encode_frame(message)).await?;
    io.flush().await?;
    Ok(())
}

/// A libp2p request-response codec for one protobuf request and one protobuf response per
/// stream, refusing requests over `MAX_REQUEST` bytes and responses over `MAX_RESPONSE`.
pub struct ProtoCodec<Req, Res, const MAX_REQUEST: usize, const MAX_RESPONSE: usize>(
    std::marker::PhantomData<fn() -> (Req, Res)>,
);

impl<Req, Res, const A: usize, const B: usize> Default for ProtoCodec<Req, Res, A, B> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<Req, Res, const A: usize, const B: usize> Clone for ProtoCodec<Req, Res, A, B> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<Req, Res, const A: usize, const B: usize> std::fmt::Debug for ProtoCodec<Req, Res, A, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProtoCodec")
    }
}

#[allow(clippy::needless_pass_by_value)] // used as map_err(invalid_data)
fn invalid_data(e: CodecError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn closed_early() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the stream closed before a frame",
    )
}

impl<Req, Res, const MAX_REQUEST: usize, const MAX_RESPONSE: usize> libp2p::request_response::Codec
    for ProtoCodec<Req, Res, MAX_REQUEST, MAX_RESPONSE>
where
    Req: Message + Default + Send + 'static,
    Res: Message + Default + Send + 'static,
{
    type Protocol = libp2p::StreamProtocol;
    type Request = Req;
    type Response = Res;

    async fn read_request<T>(&mut self, _: &Self::Protocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io, MAX_REQUEST)
            .await
            .map_err(invalid_data)?
            .ok_or_else(closed_early)
    }

    async fn read_response<T>(&mut self, _: &Self::Protocol, io: &mut T) -> io::Result<Res>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io, MAX_RESPONSE)
            .await
            .map_err(invalid_data)?
            .ok_or_else(closed_early)
    }

    async fn write_request<T>(&mut self, _: &Self::Protocol, io: &mut T, req: Req) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_message(io, &req).await.map_err(invalid_data)
    }

    async fn write_response<T>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
        res: Res,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_message(io, &res).await.map_err(invalid_data)
    }
}

#[cfg(test)]
mod tests {
    use futures::{executor::block_on, io::Cursor};
    use proptest::prelude::*;

    use super::*;
    use crate::proto::filter::FilterSubscribeResponse;

    fn response(id: &str) -> FilterSubscribeResponse {
        FilterSubscribeResponse {
            request_id: id.into(),
            status_code: 200,
            status_desc: Some("OK".into()),
        }
    }

    #[test]
    fn reads_exactly_one_frame_and_leaves_the_rest() {
        let mut bytes = encode_frame(&response("a"));
        let first_len = bytes.len();
        bytes.extend(encode_frame(&response("b")));
        let mut io = Cursor::new(bytes);
        let first: FilterSubscribeResponse =
            block_on(read_message(&mut io, 1024)).unwrap().unwrap();
        assert_eq!(first.request_id, "a");
        assert_eq!(io.position() as usize, first_len);
    }

    #[test]
    fn closed_before_any_byte_is_none() {
        let mut io = Cursor::new(Vec::new());
        assert!(block_on(read_frame(&mut io, 1024)).unwrap().is_none());
    }

    #[test]
    fn truncated_and_oversized_frames_are_errors() {
        let frame = encode_frame(&response("abc"));
        let mut io = Cursor::new(frame[..frame.len() - 1].to_vec());
        assert!(matches!(
            block_on(read_frame(&mut io, 1024)),
            Err(CodecError::Truncated { .. })
        ));
        let mut io = Cursor::new(frame.clone());
        assert!(matches!(
            block_on(read_frame(&mut io, 3)),
            Err(CodecError::Oversized { max: 3, .. })
        ));
        assert!(matches!(
            decode_frame::<FilterSubscribeResponse>(&frame[..1], 1024),
            Err(CodecError::Truncated { .. })
        ));
    }

    #[test]
    fn oversized_is_refused_before_reading_the_body() {
        // Announces 2^40 bytes and supplies none: must fail on the length, not wait for data.
        let prefix = [0x80, 0x80, 0x80, 0x80, 0x80, 0x20];
        let mut io = Cursor::new(prefix.to_vec());
        assert!(matches!(
            block_on(read_frame(&mut io, DEFAULT_MAX_FRAME_LEN)),
            Err(CodecError::Oversized { .. })
        ));
    }

    #[test]
    fn malformed_prefixes() {
        assert!(matches!(
            decode_varint(&[0x80; 11]),
            Err(CodecError::BadLengthPrefix(_))
        ));
        assert!(matches!(
            decode_varint(&[0x81, 0x00]),
            Err(CodecError::BadLengthPrefix(_))
        ));
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(matches!(
            decode_varint(&too_big),
            Err(CodecError::BadLengthPrefix(_))
        ));
        assert_eq!(decode_varint(&[0xac, 0x02]).unwrap(), Some((300, 2)));
    }

    proptest! {
        #[test]
        fn round_trip(id in ".{0,64}", code in any::<u32>(), desc in proptest::option::of(".{0,300}")) {
            let msg = FilterSubscribeResponse { request_id: id, status_code: code, status_desc: desc };
            let frame = encode_frame(&msg);
            let (back, used) = decode_frame::<FilterSubscribeResponse>(&frame, 4096).unwrap();
            prop_assert_eq!(&back, &msg);
            prop_assert_eq!(used, frame.len());
            let streamed: FilterSubscribeResponse =
                block_on(read_message(&mut Cursor::new(frame), 4096)).unwrap().unwrap();
            prop_assert_eq!(streamed, msg);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_frame::<crate::proto::store::StoreQueryRequest>(&bytes, 256);
            let mut io = Cursor::new(bytes);
            if let Ok(Some(body)) = block_on(read_frame(&mut io, 256)) {
                prop_assert!(body.len() <= 256);
            }
        }
    }
}
