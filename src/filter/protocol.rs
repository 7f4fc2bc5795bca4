//! The wire side of filter v2: protocol ids, frame limits, status codes, and the conversion of
//! a subscribe request into the criteria it names.

use libp2p::StreamProtocol;

use crate::{
    codec::ProtoCodec,
    proto::filter::{
        FilterSubscribeRequest, FilterSubscribeResponse,
        filter_subscribe_request::FilterSubscribeType,
    },
    topics::{ContentTopic, PubsubTopic},
};

/// The subscribe protocol (client to service).
pub const SUBSCRIBE_PROTOCOL: StreamProtocol =
    StreamProtocol::new("/vac/waku/filter-subscribe/2.0.0-beta1");

/// The push protocol (service to client, several frames on one stream).
pub const PUSH_PROTOCOL: StreamProtocol = StreamProtocol::new("/vac/waku/filter-push/2.0.0-beta1");

/// A subscribe request names at most this many content topics (as the reference node).
pub const MAX_CONTENT_TOPICS_PER_REQUEST: usize = 100;

/// A request of 100 content topics fits easily; anything larger is not a filter request.
const MAX_REQUEST_FRAME: usize = 64 * 1024;

/// A response is a status and a sentence.
const MAX_RESPONSE_FRAME: usize = 16 * 1024;

/// A push carries one message of at most 150 KiB, its topic and the envelope.
pub const MAX_PUSH_FRAME: usize = 160 * 1024;

/// Reads and writes filter subscribe frames.
pub type FilterCodec = ProtoCodec<
    FilterSubscribeRequest,
    FilterSubscribeResponse,
    MAX_REQUEST_FRAME,
    MAX_RESPONSE_FRAME,
>;

/// Status codes of filter v2.
pub mod status {
    /// Done.
    pub const OK: u32 = 200;
    /// Malformed request or limits exceeded.
    pub const BAD_REQUEST: u32 = 400;
    /// No such subscription (a ping or unsubscribe without one).
    pub const NOT_FOUND: u32 = 404;
    /// The peer sends requests too often.
    pub const TOO_MANY_REQUESTS: u32 = 429;
    /// The service failed.
    pub const INTERNAL: u32 = 500;
    /// The service is full (subscribers or criteria).
    pub const SERVICE_UNAVAILABLE: u32 = 503;
}

/// The kinds of subscribe-protocol request.
pub use crate::proto::filter::filter_subscribe_request::FilterSubscribeType as Kind;

/// One (pubsub topic, content topic) pair a subscriber wants.
pub type Criterion = (PubsubTopic, ContentTopic);

/// What a subscribe request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Is my subscription alive? (Refreshes it.)
    Ping,
    /// Add these criteria.
    Subscribe(Vec<Criterion>),
    /// Remove these criteria.
    Unsubscribe(Vec<Criterion>),
    /// Remove every criterion of the peer.
    UnsubscribeAll,
}

/// Why a request is refused (status 400); the text is the answer's description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The request type is not one of the four.
    #[error("unknown request type {0}")]
    UnknownType(i32),
    /// A subscribe or unsubscribe names no content topic.
    #[error("the request names no content topic")]
    NoContentTopic,
    /// Too many content topics.
    #[error(
        "the request names {0} content topics; at most {MAX_CONTENT_TOPICS_PER_REQUEST} are allowed"
    )]
    TooManyContentTopics(usize),
    /// The pubsub topic does not parse.
    #[error("pubsub topic {topic:?}: {source}")]
    PubsubTopic {
        /// The topic as sent.
        topic: String,
        /// Why it does not parse.
        #[source]
        source: crate::topics::TopicError,
    },
    /// A content topic does not parse, or cannot be autosharded.
    #[error("content topic {topic:?}: {source}")]
    ContentTopic {
        /// The topic as sent.
        topic: String,
        /// Why.
        #[source]
        source: crate::topics::TopicError,
    },
}

/// Parses a request. Without a pubsub topic, each content topic is autosharded in `cluster`
/// over `shard_count` shards.
pub fn parse(
    req: &FilterSubscribeRequest,
    cluster: u16,
    shard_count: u16,
) -> Result<Request, RequestError> {
    let kind = FilterSubscribeType::try_from(req.filter_subscribe_type)
        .map_err(|_| RequestError::UnknownType(req.filter_subscribe_type))?;
    match kind {
        FilterSubscribeType::SubscriberPing => return Ok(Request::Ping),
        FilterSubscribeType::UnsubscribeAll => return Ok(Request::UnsubscribeAll),
        FilterSubscribeType::Subscribe | FilterSubscribeType::Unsubscribe => {}
    }
    if req.content_topics.is_empty() {
        return Err(RequestError::NoContentTopic);
    }
    if req.content_topics.len() > MAX_CONTENT_TOPICS_PER_REQUEST {
        return Err(RequestError::TooManyContentTopics(req.content_topics.len()));
    }
    let pubsub: Option<PubsubTopic> = match req.pubsub_topic.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => Some(t.parse().map_err(|source| RequestError::PubsubTopic {
            topic: t.to_owned(),
            source,
        })?),
        None => None,
    };
    let mut criteria = Vec::with_capacity(req.content_topics.len());
    for raw in &req.content_topics {
        let content_error = |source| RequestError::ContentTopic {
            topic: raw.clone(),
            source,
        };
        let content: ContentTopic = raw.parse().map_err(content_error)?;
        let topic = match &pubsub {
            Some(t) => t.clone(),
            None => content
                .autoshard(cluster, shard_count)
                .map_err(content_error)?
                .pubsub_topic(),
        };
        criteria.push((topic, content));
    }
    Ok(if kind == FilterSubscribeType::Subscribe {
        Request::Subscribe(criteria)
    } else {
        Request::Unsubscribe(criteria)
    })
}

/// A request of `kind` for `content_topics` on `pubsub_topic`.
pub fn request_of(
    request_id: String,
    kind: FilterSubscribeType,
    pubsub_topic: Option<&PubsubTopic>,
    content_topics: &[ContentTopic],
) -> FilterSubscribeRequest {
    FilterSubscribeRequest {
        request_id,
        filter_subscribe_type: kind as i32,
        pubsub_topic: pubsub_topic.map(|t| t.as_str().to_owned()),
        content_topics: content_topics
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
    }
}

/// A response with `code` and `desc`.
pub fn response_of(
    request_id: String,
    code: u32,
    desc: impl Into<String>,
) -> FilterSubscribeResponse {
    FilterSubscribeResponse {
        request_id,
        status_code: code,
        status_desc: Some(desc.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(
        kind: FilterSubscribeType,
        pubsub: Option<&str>,
        topics: &[&str],
    ) -> FilterSubscribeRequest {
        FilterSubscribeRequest {
            request_id: "r".into(),
            filter_subscribe_type: kind as i32,
            pubsub_topic: pubsub.map(str::to_owned),
            content_topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            parse(&req(FilterSubscribeType::SubscriberPing, None, &[]), 1, 8),
            Ok(Request::Ping)
        );
        assert_eq!(
            parse(&req(FilterSubscribeType::UnsubscribeAll, None, &[]), 1, 8),
            Ok(Request::UnsubscribeAll)
        );
        let Ok(Request::Subscribe(c)) = parse(
            &req(
                FilterSubscribeType::Subscribe,
                Some("/waku/2/rs/1/2"),
                &["/app/1/chat/proto"],
            ),
            1,
            8,
        ) else {
            panic!("a subscribe request")
        };
        assert_eq!(c[0].0.as_str(), "/waku/2/rs/1/2");
        assert_eq!(c[0].1.as_str(), "/app/1/chat/proto");
    }

    #[test]
    fn autoshards_without_a_pubsub_topic() {
        // Vector of the autosharding spec: this content topic lives on shard 3 of 8.
        let Ok(Request::Unsubscribe(c)) = parse(
            &req(
                FilterSubscribeType::Unsubscribe,
                None,
                &["/toychat/2/huilong/proto"],
            ),
            1,
            8,
        ) else {
            panic!("an unsubscribe request")
        };
        assert_eq!(c[0].0.as_str(), "/waku/2/rs/1/3");
    }

    #[test]
    fn refuses_bad_requests() {
        let bad = [
            req(FilterSubscribeType::Subscribe, Some("/waku/2/rs/1/0"), &[]),
            req(
                FilterSubscribeType::Subscribe,
                Some("/waku/2/rs/1/x"),
                &["/a/1/b/c"],
            ),
            req(
                FilterSubscribeType::Subscribe,
                Some("/waku/2/rs/1/0"),
                &["nonsense"],
            ),
        ];
        for r in &bad {
            assert!(parse(r, 1, 8).is_err(), "{r:?}");
        }
        let many: Vec<String> = (0..101).map(|i| format!("/a/1/t{i}/proto")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let err = parse(
            &req(
                FilterSubscribeType::Subscribe,
                Some("/waku/2/rs/1/0"),
                &refs,
            ),
            1,
            8,
        )
        .unwrap_err();
        assert_eq!(err, RequestError::TooManyContentTopics(101));
        assert!(err.to_string().contains("at most 100"), "{err}");
        let mut unknown = req(FilterSubscribeType::Subscribe, None, &["/a/1/b/c"]);
        unknown.filter_subscribe_type = 9;
        let err = parse(&unknown, 1, 8).unwrap_err();
        assert_eq!(err, RequestError::UnknownType(9));
        assert!(err.to_string().contains("unknown request type"));
    }
}
