//! The Store v3 wire protocol (`/vac/waku/store-query/3.0.0`): one request and one response
//! per stream, varint-length-prefixed protobufs, and the conversion between the wire form and
//! archive queries.

use libp2p::StreamProtocol;

use super::archive::{MAX_CRITERIA, Page, Query};
use crate::{
    codec::ProtoCodec,
    message::{MessageHash, WakuMessage},
    proto::store::{StoreQueryRequest, StoreQueryResponse, WakuMessageKeyValue},
};

/// The protocol id.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/vac/waku/store-query/3.0.0");

/// Largest request accepted: 100 hashes and 100 topics fit with room to spare.
const MAX_REQUEST: usize = 64 * 1024;
/// Largest response read: a page of 100 maximal messages.
const MAX_RESPONSE: usize = 100 * 160 * 1024;

/// Status codes of Store v3.
pub mod status {
    /// Success.
    pub const OK: u32 = 200;
    /// A malformed or unacceptable query.
    pub const BAD_REQUEST: u32 = 400;
    /// The client asks too often.
    pub const TOO_MANY_REQUESTS: u32 = 429;
    /// The archive failed.
    pub const INTERNAL: u32 = 500;
    /// This node keeps no archive.
    pub const UNAVAILABLE: u32 = 503;
}

/// Reads and writes Store v3 frames.
pub type StoreCodec = ProtoCodec<StoreQueryRequest, StoreQueryResponse, MAX_REQUEST, MAX_RESPONSE>;

/// Why a request or an answer is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The request names too many content topics or hashes (status 400).
    #[error("at most {MAX_CRITERIA} content topics or message hashes per query")]
    TooManyCriteria,
    /// A hash or cursor is not 32 bytes.
    #[error("{what} must be 32 bytes, not {len}")]
    HashLength {
        /// What it is.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The store answered with an error status.
    #[error("the store answered {code}: {desc}")]
    Status {
        /// The status code.
        code: u32,
        /// Its description.
        desc: String,
    },
    /// A message of the answer is not a valid message.
    #[error("the store sent a bad message: {0}")]
    BadMessage(#[source] crate::message::MessageError),
    /// A message of the answer does not match its hash.
    #[error("the store sent a message that does not match its hash")]
    HashMismatch,
}

fn hash(bytes: &[u8], what: &'static str) -> Result<MessageHash, WireError> {
    let array: [u8; 32] = bytes.try_into().map_err(|_| WireError::HashLength {
        what,
        len: bytes.len(),
    })?;
    Ok(MessageHash(array))
}

/// The archive query a request asks for, or the reason it is refused (status 400).
pub fn query_of(req: &StoreQueryRequest) -> Result<Query, WireError> {
    if req.content_topics.len() > MAX_CRITERIA || req.message_hashes.len() > MAX_CRITERIA {
        return Err(WireError::TooManyCriteria);
    }
    Ok(Query {
        include_data: req.include_data,
        pubsub_topic: req.pubsub_topic.clone().filter(|t| !t.is_empty()),
        content_topics: req.content_topics.clone(),
        time_start: req.time_start,
        time_end: req.time_end,
        message_hashes: req
            .message_hashes
            .iter()
            .map(|h| hash(h, "a message hash"))
            .collect::<Result<_, _>>()?,
        cursor: req
            .pagination_cursor
            .as_ref()
            .map(|c| hash(c, "the pagination cursor"))
            .transpose()?,
        forward: req.pagination_forward.unwrap_or(false),
        limit: req.pagination_limit,
    })
}

/// The request for an archive query.
pub fn request_of(request_id: String, q: &Query) -> StoreQueryRequest {
    StoreQueryRequest {
        request_id,
        include_data: q.include_data,
        pubsub_topic: q.pubsub_topic.clone(),
        content_topics: q.content_topics.clone(),
        time_start: q.time_start,
        time_end: q.time_end,
        message_hashes: q
            .message_hashes
            .iter()
            .map(|h| h.as_bytes().to_vec().into())
            .collect(),
        pagination_cursor: q.cursor.map(|c| c.as_bytes().to_vec().into()),
        pagination_forward: Some(q.forward),
        pagination_limit: q.limit,
    }
}

/// A successful response.
pub fn response_of(request_id: String, page: &Page) -> StoreQueryResponse {
    StoreQueryResponse {
        request_id,
        status_code: status::OK,
        status_desc: Some("OK".into()),
        messages: page
            .entries
            .iter()
            .map(|e| WakuMessageKeyValue {
                message_hash: Some(e.hash.as_bytes().to_vec().into()),
                message: e.message.as_ref().map(WakuMessage::to_proto),
                pubsub_topic: e.pubsub_topic.clone(),
            })
            .collect(),
        pagination_cursor: page.cursor.map(|c| c.as_bytes().to_vec().into()),
    }
}

/// An error response.
pub fn error_of(
    request_id: String,
    code: u32,
    description: impl Into<String>,
) -> StoreQueryResponse {
    StoreQueryResponse {
        request_id,
        status_code: code,
        status_desc: Some(description.into()),
        messages: Vec::new(),
        pagination_cursor: None,
    }
}

/// The page a response carries, checking every message against its hash.
pub fn page_of(res: &StoreQueryResponse) -> Result<Page, WireError> {
    if res.status_code != status::OK {
        return Err(WireError::Status {
            code: res.status_code,
            desc: res.status_desc.clone().unwrap_or_default(),
        });
    }
    let mut entries = Vec::with_capacity(res.messages.len());
    for kv in &res.messages {
        let h = hash(
            kv.message_hash.as_deref().unwrap_or_default(),
            "a message hash",
        )?;
        let message = match &kv.message {
            Some(m) => Some(WakuMessage::try_from(m.clone()).map_err(WireError::BadMessage)?),
            None => None,
        };
        if let (Some(m), Some(t)) = (&message, &kv.pubsub_topic)
            && m.hash(t) != h
        {
            return Err(WireError::HashMismatch);
        }
        entries.push(super::archive::Entry {
            hash: h,
            message,
            pubsub_topic: kv.pubsub_topic.clone(),
        });
    }
    Ok(Page {
        entries,
        cursor: res
            .pagination_cursor
            .as_deref()
            .map(|c| hash(c, "the pagination cursor"))
            .transpose()?,
    })
}
