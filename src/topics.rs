//! Pubsub topics and content topics: parsing, formatting and autosharding (RFC 51).
//!
//! - A static-shard pubsub topic is `/waku/2/rs/<cluster>/<shard>`; [`StaticShard`] parses and
//!   formats it. Older named pubsub topics (`/waku/2/default-waku/proto`) remain valid
//!   [`PubsubTopic`]s that map to no shard.
//! - A content topic is `/{application}/{version}/{name}/{encoding}`, optionally preceded by a
//!   generation: `/{generation}/{application}/...`. [`ContentTopic`] keeps every part so that
//!   formatting reproduces the original string exactly (the message hash covers it).
//! - Autosharding maps a content topic to a shard from `sha256(application || version)`.

use std::{fmt, str::FromStr};

use sha2::{Digest, Sha256};

/// Prefix shared by all static-shard pubsub topics.
const STATIC_SHARD_PREFIX: &str = "/waku/2/rs/";

/// Why a topic string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The string is empty.
    #[error("topic is empty")]
    Empty,
    /// A pubsub topic that should be a static shard does not start with `/waku/2/rs/`.
    #[error("`{0}` is not a static shard topic: expected /waku/2/rs/<cluster>/<shard>")]
    NotStaticShard(String),
    /// A cluster or shard number is not a number in 0..=65535.
    #[error("`{topic}`: {what} `{value}` is not a number between 0 and 65535")]
    BadNumber {
        /// The topic being parsed.
        topic: String,
        /// `cluster` or `shard`.
        what: &'static str,
        /// The offending text.
        value: String,
    },
    /// A content topic does not start with `/`.
    #[error("content topic `{0}` must start with `/`")]
    MissingLeadingSlash(String),
    /// A content topic has the wrong number of `/`-separated parts.
    #[error(
        "content topic `{topic}` has {parts} parts; expected /application/version/name/encoding, \
         optionally preceded by /generation"
    )]
    WrongPartCount {
        /// The content topic.
        topic: String,
        /// How many parts were found.
        parts: usize,
    },
    /// A part of a content topic is empty (e.g. `//`).
    #[error("content topic `{topic}` has an empty {part}")]
    EmptyPart {
        /// The content topic.
        topic: String,
        /// Which part is empty.
        part: &'static str,
    },
    /// The generation prefix is not a number.
    #[error("content topic `{topic}`: generation `{value}` is not a number")]
    BadGeneration {
        /// The content topic.
        topic: String,
        /// The offending text.
        value: String,
    },
    /// Autosharding is defined for generation 0 only.
    #[error("content topic `{0}`: autosharding supports generation 0 only")]
    UnsupportedGeneration(String),
    /// Autosharding over zero shards.
    #[error("the number of shards must be at least 1")]
    NoShards,
}

/// A static shard: cluster id and shard index (`/waku/2/rs/<cluster>/<shard>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StaticShard {
    /// The cluster id (1 for The Waku Network).
    pub cluster: u16,
    /// The shard index within the cluster.
    pub shard: u16,
}

impl StaticShard {
    /// A shard of a cluster.
    pub const fn new(cluster: u16, shard: u16) -> Self {
        Self { cluster, shard }
    }

    /// The pubsub topic of this shard.
    pub fn pubsub_topic(self) -> PubsubTopic {
        PubsubTopic(self.to_string())
    }
}

impl fmt::Display for StaticShard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{STATIC_SHARD_PREFIX}{}/{}", self.cluster, self.shard)
    }
}

impl FromStr for StaticShard {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix(STATIC_SHARD_PREFIX)
            .ok_or_else(|| TopicError::NotStaticShard(s.to_owned()))?;
        let (cluster, shard) = rest
            .split_once('/')
            .ok_or_else(|| TopicError::NotStaticShard(s.to_owned()))?;
        Ok(Self {
            cluster: parse_u16(s, "cluster", cluster)?,
            shard: parse_u16(s, "shard", shard)?,
        })
    }
}

/// Parses a decimal u16 without sign, spaces or leading `+`.
fn parse_u16(topic: &str, what: &'static str, value: &str) -> Result<u16, TopicError> {
    let bad = || TopicError::BadNumber {
        topic: topic.to_owned(),
        what,
        value: value.to_owned(),
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    value.parse().map_err(|_| bad())
}

/// A gossipsub topic carrying Waku messages: a static shard or a legacy named topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PubsubTopic(String);

impl PubsubTopic {
    /// The topic as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The static shard this topic names, if it is one.
    pub fn static_shard(&self) -> Option<StaticShard> {
        self.0.parse().ok()
    }
}

impl FromStr for PubsubTopic {
    type Err = TopicError;

    /// Accepts any non-empty topic, but a topic under `/waku/2/rs/` must be a well-formed shard:
    /// a typo there would otherwise silently become a topic no peer uses.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(TopicError::Empty);
        }
        if s.starts_with(STATIC_SHARD_PREFIX) {
            s.parse::<StaticShard>()?;
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for PubsubTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<StaticShard> for PubsubTopic {
    fn from(shard: StaticShard) -> Self {
        shard.pubsub_topic()
    }
}

/// A parsed content topic `/[generation/]application/version/name/encoding`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentTopic {
    raw: String,
    generation: Option<u32>,
    /// Byte offsets of application, version, name and encoding in `raw`.
    parts: [(usize, usize); 4],
}

impl ContentTopic {
    /// The explicit generation prefix, if the topic has one.
    pub fn generation(&self) -> Option<u32> {
        self.generation
    }

    /// The application part.
    pub fn application(&self) -> &str {
        self.part(0)
    }

    /// The version part (of the application, not of Waku).
    pub fn version(&self) -> &str {
        self.part(1)
    }

    /// The topic name part.
    pub fn name(&self) -> &str {
        self.part(2)
    }

    /// The encoding part.
    pub fn encoding(&self) -> &str {
        self.part(3)
    }

    /// The topic exactly as it was given.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The topic string, consuming the parsed form.
    pub fn into_string(self) -> String {
        self.raw
    }

    fn part(&self, i: usize) -> &str {
        let (start, end) = self.parts[i];
        &self.raw[start..end]
    }

    /// The autosharding shard index among `shard_count` shards.
    pub fn shard_index(&self, shard_count: u16) -> Result<u16, TopicError> {
        if shard_count == 0 {
            return Err(TopicError::NoShards);
        }
        if self.generation.is_some_and(|g| g != 0) {
            return Err(TopicError::UnsupportedGeneration(self.raw.clone()));
        }
        let digest = Sha256::new()
            .chain_update(self.application())
            .chain_update(self.version())
            .finalize();
        let tail: [u8; 8] = digest[24..].try_into().expect("sha256 is 32 bytes");
        let index = u64::from_be_bytes(tail) % u64::from(shard_count);
        Ok(u16::try_from(index).expect("index < shard_count <= u16::MAX"))
    }

    /// The static shard autosharding assigns this topic to, in `cluster` with `shard_count`
    /// shards.
    pub fn autoshard(&self, cluster: u16, shard_count: u16) -> Result<StaticShard, TopicError> {
        Ok(StaticShard::new(cluster, self.shard_index(shard_count)?))
    }
}

const PART_NAMES: [&str; 4] = ["application", "version", "name", "encoding"];

impl FromStr for ContentTopic {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(TopicError::Empty);
        }
        let body = s
            .strip_prefix('/')
            .ok_or_else(|| TopicError::MissingLeadingSlash(s.to_owned()))?;
        let mut spans = Vec::with_capacity(5);
        let mut start = 1;
        for piece in body.split('/') {
            spans.push((start, start + piece.len()));
            start += piece.len() + 1;
        }
        let (generation, spans) = match spans.len() {
            4 => (None, &spans[..]),
            5 => {
                let (gs, ge) = spans[0];
                let value = &s[gs..ge];
                let generation = value
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| value.parse::<u32>().ok())
                    .flatten()
                    .ok_or_else(|| TopicError::BadGeneration {
                        topic: s.to_owned(),
                        value: value.to_owned(),
                    })?;
                (Some(generation), &spans[1..])
            }
            parts => {
                return Err(TopicError::WrongPartCount {
                    topic: s.to_owned(),
                    parts,
                });
            }
        };
        let mut parts = [(0, 0); 4];
        for (i, &(a, b)) in spans.iter().enumerate() {
            if a == b {
                return Err(TopicError::EmptyPart {
                    topic: s.to_owned(),
                    part: PART_NAMES[i],
                });
            }
            parts[i] = (a, b);
        }
        Ok(Self {
            raw: s.to_owned(),
            generation,
            parts,
        })
    }
}

impl fmt::Display for ContentTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_shard_round_trip() {
        let shard: StaticShard = "/waku/2/rs/1/3".parse().unwrap();
        assert_eq!(shard, StaticShard::new(1, 3));
        assert_eq!(shard.to_string(), "/waku/2/rs/1/3");
    }

    #[test]
    fn static_shard_errors_say_what_is_wrong() {
        for bad in [
            "/waku/2/rs/1",
            "/waku/2/rs/x/1",
            "/waku/2/rs/1/70000",
            "/waku/2/rs/1/+1",
        ] {
            let err = bad.parse::<StaticShard>().unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
        assert!(matches!(
            "/waku/2/default-waku/proto".parse::<StaticShard>(),
            Err(TopicError::NotStaticShard(_))
        ));
    }

    #[test]
    fn pubsub_topic_accepts_named_topics_but_checks_shards() {
        let named: PubsubTopic = "/waku/2/default-waku/proto".parse().unwrap();
        assert_eq!(named.static_shard(), None);
        let sharded: PubsubTopic = "/waku/2/rs/16/32".parse().unwrap();
        assert_eq!(sharded.static_shard(), Some(StaticShard::new(16, 32)));
        assert!("/waku/2/rs/16/".parse::<PubsubTopic>().is_err());
        assert_eq!("".parse::<PubsubTopic>(), Err(TopicError::Empty));
    }

    #[test]
    fn content_topic_parts() {
        let t: ContentTopic = "/toychat/2/huilong/proto".parse().unwrap();
        assert_eq!(
            (
                t.generation(),
                t.application(),
                t.version(),
                t.name(),
                t.encoding()
            ),
            (None, "toychat", "2", "huilong", "proto")
        );
        let g: ContentTopic = "/0/toychat/2/huilong/proto".parse().unwrap();
        assert_eq!((g.generation(), g.application()), (Some(0), "toychat"));
        assert_eq!(g.to_string(), "/0/toychat/2/huilong/proto");
    }

    #[test]
    fn content_topic_errors() {
        use TopicError::*;
        type Check = fn(&TopicError) -> bool;
        let cases: [(&str, Check); 6] = [
            ("toychat/2/huilong/proto", |e| {
                matches!(e, MissingLeadingSlash(_))
            }),
            ("/toychat/2/huilong", |e| {
                matches!(e, WrongPartCount { parts: 3, .. })
            }),
            ("/a/b/c/d/e/f", |e| {
                matches!(e, WrongPartCount { parts: 6, .. })
            }),
            ("/toychat//huilong/proto", |e| {
                matches!(
                    e,
                    EmptyPart {
                        part: "version",
                        ..
                    }
                )
            }),
            ("/x/toychat/2/huilong/proto", |e| {
                matches!(e, BadGeneration { .. })
            }),
            ("", |e| matches!(e, Empty)),
        ];
        for (topic, expected) in cases {
            let err = topic.parse::<ContentTopic>().unwrap_err();
            assert!(expected(&err), "{topic}: {err:?}");
        }
    }

    #[test]
    fn autosharding_rejects_later_generations_and_zero_shards() {
        let g1: ContentTopic = "/1/toychat/2/huilong/proto".parse().unwrap();
        assert!(matches!(
            g1.shard_index(8),
            Err(TopicError::UnsupportedGeneration(_))
        ));
        let g0: ContentTopic = "/toychat/2/huilong/proto".parse().unwrap();
        assert_eq!(g0.shard_index(0), Err(TopicError::NoShards));
        assert_eq!(g0.autoshard(1, 8).unwrap().to_string(), "/waku/2/rs/1/3");
    }
}
