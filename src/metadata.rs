//! The metadata protocol (`/vac/waku/metadata/1.0.0`): each side tells its cluster id and
//! shards; a peer of another cluster is disconnected.

use std::io;

use futures::{AsyncRead, AsyncWrite};
use libp2p::{StreamProtocol, request_response};

use crate::{
    codec::{CodecError, read_message, write_message},
    proto::metadata::{WakuMetadataRequest, WakuMetadataResponse},
};

/// The protocol id.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/vac/waku/metadata/1.0.0");

/// Largest metadata frame accepted (a cluster id and at most 1,024 shards fit easily).
const MAX_FRAME: usize = 16 * 1024;

/// A node's cluster and shards, as sent in both directions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The cluster id; `None` when the peer did not say.
    pub cluster_id: Option<u32>,
    /// The shards the node serves.
    pub shards: Vec<u32>,
}

impl Metadata {
    fn shards_of(unpacked: Vec<u32>, packed: Vec<u32>) -> Vec<u32> {
        let mut shards = if unpacked.is_empty() {
            packed
        } else {
            unpacked
        };
        shards.sort_unstable();
        shards.dedup();
        shards
    }
}

/// Reads and writes metadata frames (varint length prefix + protobuf).
#[derive(Debug, Clone, Default)]
pub struct MetadataCodec;

#[allow(clippy::needless_pass_by_value)] // used as map_err(io_error)
fn io_error(e: CodecError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the stream closed before a metadata frame",
    )
}

impl request_response::Codec for MetadataCodec {
    type Protocol = StreamProtocol;
    type Request = Metadata;
    type Response = Metadata;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Metadata>
    where
        T: AsyncRead + Unpin + Send,
    {
        let m: WakuMetadataRequest = read_message(io, MAX_FRAME)
            .await
            .map_err(io_error)?
            .ok_or_else(closed)?;
        Ok(Metadata {
            cluster_id: m.cluster_id,
            shards: Metadata::shards_of(m.shards, m.shards_packed),
        })
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Metadata>
    where
        T: AsyncRead + Unpin + Send,
    {
        let m: WakuMetadataResponse = read_message(io, MAX_FRAME)
            .await
            .map_err(io_error)?
            .ok_or_else(closed)?;
        Ok(Metadata {
            cluster_id: m.cluster_id,
            shards: Metadata::shards_of(m.shards, m.shards_packed),
        })
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Metadata,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let m = WakuMetadataRequest {
            cluster_id: req.cluster_id,
            shards: req.shards,
            shards_packed: Vec::new(),
        };
        write_message(io, &m).await.map_err(io_error)
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Metadata,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let m = WakuMetadataResponse {
            cluster_id: res.cluster_id,
            shards: res.shards,
            shards_packed: Vec::new(),
        };
        write_message(io, &m).await.map_err(io_error)
    }
}
