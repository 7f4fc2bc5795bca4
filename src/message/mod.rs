//! The Waku message as the rest of the node sees it: validated once at the edge, then trusted.
//!
//! [`WakuMessage`] is built only through [`WakuMessage::decode`], [`TryFrom`] of the wire type,
//! or [`WakuMessage::builder`], each of which enforces the limits of 14/WAKU2-MESSAGE as The
//! Waku Network applies them (see [`limits`]). [`hash`] computes the deterministic message
//! hash that store, filter and lightpush use to name a message.

pub mod hash;
mod validate;

use bytes::Bytes;
use prost::Message as _;

pub use hash::{MessageHash, message_hash};
pub use validate::{MessageError, limits};

use crate::{proto, topics::ContentTopic};

/// A validated Waku message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakuMessage {
    payload: Bytes,
    content_topic: ContentTopic,
    version: u32,
    timestamp: Option<i64>,
    meta: Option<Bytes>,
    rate_limit_proof: Option<Bytes>,
    ephemeral: bool,
}

impl WakuMessage {
    /// Starts a message with its content topic and payload.
    pub fn builder(content_topic: ContentTopic, payload: impl Into<Bytes>) -> Builder {
        Builder(proto::message::WakuMessage {
            payload: payload.into(),
            content_topic: content_topic.into_string(),
            ..Default::default()
        })
    }

    /// Decodes and validates a message received from the wire. The size limit is checked before
    /// decoding so an oversized message costs nothing to refuse.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        validate::check_encoded_len(bytes.len())?;
        let wire = proto::message::WakuMessage::decode(bytes)?;
        Self::try_from(wire)
    }

    /// Encodes the message for the wire.
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Bytes of the encoded message.
    pub fn encoded_len(&self) -> usize {
        prost::Message::encoded_len(&self.to_proto())
    }

    /// The wire form of this message.
    pub fn to_proto(&self) -> proto::message::WakuMessage {
        proto::message::WakuMessage {
            payload: self.payload.clone(),
            content_topic: self.content_topic.to_string(),
            version: (self.version != 0).then_some(self.version),
            timestamp: self.timestamp,
            meta: self.meta.clone(),
            rate_limit_proof: self.rate_limit_proof.clone(),
            ephemeral: self.ephemeral.then_some(true),
        }
    }

    /// The application payload.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The content topic.
    pub fn content_topic(&self) -> &ContentTopic {
        &self.content_topic
    }

    /// The payload encryption version (0 = none, 1 = asymmetric/symmetric v1, ...).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The sender's timestamp in Unix nanoseconds, if set.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The RLN signal hash `x` of this message (payload, content topic and timestamp; a
    /// message without a timestamp hashes timestamp 0).
    pub fn signal_x(&self) -> crate::rln::field::Fr {
        crate::rln::waku::signal_x(
            self.payload(),
            self.content_topic().as_str(),
            self.timestamp().unwrap_or(0),
        )
    }

    /// Application metadata covered by the message hash.
    pub fn meta(&self) -> Option<&Bytes> {
        self.meta.as_ref()
    }

    /// The serialized RLN proof, if any.
    pub fn rate_limit_proof(&self) -> Option<&Bytes> {
        self.rate_limit_proof.as_ref()
    }

    /// Whether stores must not archive this message.
    pub fn ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// The same message carrying `proof` (a serialized RateLimitProof).
    pub fn with_rate_limit_proof(mut self, proof: impl Into<Bytes>) -> Result<Self, MessageError> {
        self.rate_limit_proof = Some(proof.into());
        validate::check_encoded_len(self.to_proto().encoded_len())?;
        Ok(self)
    }

    /// The deterministic hash of this message on `pubsub_topic`.
    pub fn hash(&self, pubsub_topic: &str) -> MessageHash {
        message_hash(
            pubsub_topic,
            &self.payload,
            self.content_topic.as_str(),
            self.meta.as_deref(),
            self.timestamp,
        )
    }
}

impl TryFrom<proto::message::WakuMessage> for WakuMessage {
    type Error = MessageError;

    fn try_from(wire: proto::message::WakuMessage) -> Result<Self, Self::Error> {
        validate::check_encoded_len(wire.encoded_len())?;
        let content_topic = validate::content_topic(&wire.content_topic)?;
        if let Some(meta) = &wire.meta {
            validate::check_meta(meta)?;
        }
        if let Some(ts) = wire.timestamp {
            validate::check_timestamp(ts)?;
        }
        Ok(Self {
            payload: wire.payload,
            content_topic,
            version: wire.version.unwrap_or(0),
            timestamp: wire.timestamp,
            meta: wire.meta,
            rate_limit_proof: wire.rate_limit_proof,
            ephemeral: wire.ephemeral.unwrap_or(false),
        })
    }
}

impl From<&WakuMessage> for proto::message::WakuMessage {
    fn from(message: &WakuMessage) -> Self {
        message.to_proto()
    }
}

/// Builds a [`WakuMessage`]; [`Builder::build`] validates it.
#[derive(Debug, Clone)]
pub struct Builder(proto::message::WakuMessage);

impl Builder {
    /// Sets the Unix timestamp in nanoseconds.
    pub fn timestamp(mut self, nanos: i64) -> Self {
        self.0.timestamp = Some(nanos);
        self
    }

    /// Sets the application metadata (at most 64 bytes).
    pub fn meta(mut self, meta: impl Into<Bytes>) -> Self {
        self.0.meta = Some(meta.into());
        self
    }

    /// Sets the payload version.
    pub fn version(mut self, version: u32) -> Self {
        self.0.version = Some(version);
        self
    }

    /// Marks the message as ephemeral (never archived).
    pub fn ephemeral(mut self, ephemeral: bool) -> Self {
        self.0.ephemeral = Some(ephemeral);
        self
    }

    /// Validates and returns the message.
    pub fn build(self) -> Result<WakuMessage, MessageError> {
        WakuMessage::try_from(self.0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signal_of_a_message_uses_zero_for_a_missing_timestamp() {
        use crate::rln::waku::signal_x;
        let topic = "/toychat/2/huilong/proto".parse().unwrap();
        let untimed = WakuMessage::builder(topic, b"hi".to_vec()).build().unwrap();
        assert_eq!(
            untimed.signal_x(),
            signal_x(b"hi", "/toychat/2/huilong/proto", 0)
        );
        let ts = 1_700_000_000_000_000_000;
        let topic = "/toychat/2/huilong/proto".parse().unwrap();
        let timed = WakuMessage::builder(topic, b"hi".to_vec())
            .timestamp(ts)
            .build()
            .unwrap();
        assert_eq!(
            timed.signal_x(),
            signal_x(b"hi", "/toychat/2/huilong/proto", ts)
        );
    }

    use super::*;

    fn topic() -> ContentTopic {
        "/toychat/2/huilong/proto".parse().unwrap()
    }

    #[test]
    fn encode_decode_round_trip() {
        let msg = WakuMessage::builder(topic(), b"hello".to_vec())
            .timestamp(1_700_000_000_000_000_000)
            .meta(b"m".to_vec())
            .ephemeral(true)
            .build()
            .unwrap();
        let back = WakuMessage::decode(&msg.encode()).unwrap();
        assert_eq!(back, msg);
        assert!(back.ephemeral());
    }

    #[test]
    fn limits_are_enforced() {
        let big = vec![0u8; limits::MAX_ENCODED_LEN];
        assert!(matches!(
            WakuMessage::builder(topic(), big).build(),
            Err(MessageError::TooLarge { .. })
        ));
        assert!(matches!(
            WakuMessage::builder(topic(), vec![])
                .meta(vec![0u8; 65])
                .build(),
            Err(MessageError::MetaTooLong { len: 65 })
        ));
        assert!(
            WakuMessage::builder(topic(), vec![])
                .meta(vec![0u8; 64])
                .build()
                .is_ok()
        );
    }

    #[test]
    fn adding_a_proof_rechecks_the_size() {
        let msg = WakuMessage::builder(topic(), vec![0u8; limits::MAX_ENCODED_LEN - 100])
            .build()
            .unwrap();
        assert!(matches!(
            msg.with_rate_limit_proof(vec![0u8; 300]),
            Err(MessageError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(matches!(
            WakuMessage::decode(&[0xff, 0xff]),
            Err(MessageError::Decode(_))
        ));
    }
}
