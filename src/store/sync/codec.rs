//! The bytes of store sync, as the reference node (v0.37 and later) writes them.
//!
//! A reconciliation payload is one length-prefixed frame:
//!
//! ```text
//! payload   = 0x00                                   (no ranges: the session ends)
//!           | topics(pubsub) topics(content) varint(first lower time) range+
//! topics    = varint(count) { varint(len) utf8 }*
//! range     = varint(upper time - previous upper time) [u8(n) hash[..n] if the difference is 0]
//!             u8(kind) body
//! kind      = 0 skip | 1 fingerprint (32 bytes) | 2 item set
//! item set  = varint(count) { varint(time - previous time) hash[32] }* u8(reconciled)
//! ```
//!
//! Ranges are contiguous: a range's lower bound is the previous one's upper bound, and the
//! first lower bound's hash is zero. A bound's hash travels only when its time equals the
//! previous bound's, as the bytes up to its first non-zero one (zeros after them). Varints are
//! LEB128 and stay below 2^63, as the reference node reads at most 9 bytes of one.
//!
//! A transfer frame is the protobuf `WakuMessageAndTopic { string pubsub_topic = 1;
//! WakuMessage message = 2; }` (the order of the code, not the older specification text), with
//! the message's payload field always written (it is `required`), since the reference node
//! requires it.

use libp2p::StreamProtocol;
use prost::Message as _;

use crate::message::WakuMessage;

/// Range-based set reconciliation.
pub const RECONCILIATION: StreamProtocol = StreamProtocol::new("/vac/waku/reconciliation/1.0.0");
/// Messages one side lacks, pushed by the other.
pub const TRANSFER: StreamProtocol = StreamProtocol::new("/vac/waku/transfer/1.0.0");
/// Largest transfer frame: the network's message limit, as the reference node reads it.
pub const MAX_TRANSFER_FRAME: usize = 150 * 1024;
/// Largest reconciliation frame we read. The reference node sets none, and lists every item
/// of a differing range of up to 100 items, so a round between archives of a million messages
/// that differ everywhere can reach tens of megabytes; ours lists at most
/// [`super::set::MAX_REPLY_ITEMS`] (about 3.7 MB).
pub const MAX_RECONCILIATION_FRAME: usize = 64 * 1024 * 1024;
/// Most topics of either kind in one payload.
const MAX_TOPICS: u64 = 1_024;
/// Longest topic.
const MAX_TOPIC_LEN: u64 = 1_024;

/// A message's place in the set: its timestamp, then its hash, in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SyncId {
    /// The message's timestamp, nanoseconds.
    pub time: i64,
    /// The message's deterministic hash.
    pub hash: [u8; 32],
}

impl SyncId {
    /// The bound before every message of `time`.
    pub fn at(time: i64) -> Self {
        Self {
            time,
            hash: [0; 32],
        }
    }
}

/// What one side says about a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Nothing to do here.
    Skip,
    /// The XOR of the hashes of every message in the range.
    Fingerprint([u8; 32]),
    /// Every message in the range; `reconciled` once the sender compared it with ours.
    ItemSet {
        /// In order.
        items: Vec<SyncId>,
        /// Whether this answers an item set (no answer is expected then).
        reconciled: bool,
    },
}

impl Body {
    fn kind(&self) -> u8 {
        match self {
            Self::Skip => 0,
            Self::Fingerprint(_) => 1,
            Self::ItemSet { .. } => 2,
        }
    }
}

/// One reconciliation message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payload {
    /// The sender's pubsub topics (empty: all).
    pub pubsub_topics: Vec<String>,
    /// The sender's content topics (empty: all).
    pub content_topics: Vec<String>,
    /// Contiguous ranges: `(lower, upper)` with `lower` the previous range's `upper`.
    pub ranges: Vec<((SyncId, SyncId), Body)>,
}

impl Payload {
    /// Whether the payload ends the session: no ranges, or only skips.
    pub fn is_final(&self) -> bool {
        self.ranges.iter().all(|(_, b)| *b == Body::Skip)
    }
}

/// Why a payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncWireError {
    /// The bytes end inside a field.
    #[error("the payload ends inside {0}")]
    Truncated(&'static str),
    /// A varint is longer than 9 bytes, or overflows a timestamp.
    #[error("{0} is out of range")]
    OutOfRange(&'static str),
    /// A field holds a value the protocol does not define.
    #[error("{0}")]
    Invalid(String),
}

fn put_varint(out: &mut Vec<u8>, value: u64) {
    debug_assert!(
        value < 1 << 63,
        "the reference node reads 9 varint bytes at most"
    );
    prost::encoding::encode_varint(value, out);
}

fn put_topics(out: &mut Vec<u8>, topics: &[String]) {
    put_varint(out, topics.len() as u64);
    for t in topics {
        put_varint(out, t.len() as u64);
        out.extend_from_slice(t.as_bytes());
    }
}

/// The difference `b - a` of two times of one payload, which the encoder writes as a varint.
fn diff(a: i64, b: i64) -> u64 {
    b.checked_sub(a)
        .and_then(|d| u64::try_from(d).ok())
        .expect("ranges and items are written in order")
}

/// The bytes of the hash prefix that identify `hash` over a zero hash: up to and including its
/// first non-zero byte (all 32 for a zero hash).
fn prefix_len(hash: &[u8; 32]) -> usize {
    hash.iter().position(|b| *b != 0).map_or(32, |i| i + 1)
}

/// Encodes a payload (without its length prefix).
pub fn encode(payload: &Payload) -> Vec<u8> {
    let Some(((first, _), _)) = payload.ranges.first() else {
        return vec![0];
    };
    let mut out = Vec::new();
    put_topics(&mut out, &payload.pubsub_topics);
    put_topics(&mut out, &payload.content_topics);
    put_varint(
        &mut out,
        u64::try_from(first.time).expect("timestamps after 1970"),
    );
    let mut last = first.time;
    for ((_, upper), body) in &payload.ranges {
        let d = diff(last, upper.time);
        last = upper.time;
        put_varint(&mut out, d);
        if d == 0 {
            let n = prefix_len(&upper.hash);
            out.push(n as u8);
            out.extend_from_slice(&upper.hash[..n]);
        }
        out.push(body.kind());
        match body {
            Body::Skip => {}
            Body::Fingerprint(fp) => out.extend_from_slice(fp),
            Body::ItemSet { items, reconciled } => {
                put_varint(&mut out, items.len() as u64);
                let mut t = 0i64;
                for item in items {
                    put_varint(&mut out, diff(t, item.time));
                    t = item.time;
                    out.extend_from_slice(&item.hash);
                }
                out.push(u8::from(*reconciled));
            }
        }
    }
    out
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self, what: &'static str) -> Result<u8, SyncWireError> {
        let b = *self
            .buf
            .get(self.at)
            .ok_or(SyncWireError::Truncated(what))?;
        self.at += 1;
        Ok(b)
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&[u8], SyncWireError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(SyncWireError::Truncated(what))?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn hash(&mut self, what: &'static str) -> Result<[u8; 32], SyncWireError> {
        Ok(self.bytes(32, what)?.try_into().expect("32 bytes"))
    }

    /// A varint below 2^63 (9 bytes at most).
    fn varint(&mut self, what: &'static str) -> Result<u64, SyncWireError> {
        let mut value = 0u64;
        for i in 0..9 {
            let b = self.byte(what)?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(SyncWireError::OutOfRange(what))
    }

    fn time_after(&mut self, base: i64, what: &'static str) -> Result<i64, SyncWireError> {
        let d = self.varint(what)?;
        i64::try_from(d)
            .ok()
            .and_then(|d| base.checked_add(d))
            .ok_or(SyncWireError::OutOfRange(what))
    }

    fn topics(&mut self, what: &'static str) -> Result<Vec<String>, SyncWireError> {
        let n = self.varint(what)?;
        if n > MAX_TOPICS {
            return Err(SyncWireError::Invalid(format!(
                "{n} {what}: at most {MAX_TOPICS}"
            )));
        }
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let len = self.varint(what)?;
            if len > MAX_TOPIC_LEN {
                return Err(SyncWireError::Invalid(format!(
                    "a topic of {len} bytes: at most {MAX_TOPIC_LEN}"
                )));
            }
            let bytes = self.bytes(len as usize, what)?;
            let text = std::str::from_utf8(bytes)
                .map_err(|_| SyncWireError::Invalid("a topic is not UTF-8".into()))?;
            out.push(text.to_owned());
        }
        Ok(out)
    }
}

/// Decodes a payload. A frame of at most one byte has no ranges.
pub fn decode(buf: &[u8]) -> Result<Payload, SyncWireError> {
    if buf.len() <= 1 {
        return Ok(Payload::default());
    }
    let mut r = Reader { buf, at: 0 };
    let pubsub_topics = r.topics("the pubsub topics")?;
    let content_topics = r.topics("the content topics")?;
    let first = r.varint("the first lower bound")?;
    let first = i64::try_from(first).map_err(|_| SyncWireError::OutOfRange("the first bound"))?;
    let mut lower = SyncId::at(first);
    let mut ranges = Vec::new();
    // Every range takes at least 2 bytes; a last lone byte is not a range (as the reference
    // node reads it).
    while r.at + 1 < buf.len() {
        let time = r.time_after(lower.time, "a range bound")?;
        let mut upper = SyncId::at(time);
        if time == lower.time {
            let n = usize::from(r.byte("a bound's hash prefix")?);
            if n == 0 || n > 32 {
                return Err(SyncWireError::Invalid(format!(
                    "a hash prefix of {n} bytes"
                )));
            }
            upper.hash[..n].copy_from_slice(r.bytes(n, "a bound's hash prefix")?);
        }
        let body = match r.byte("a range type")? {
            0 => Body::Skip,
            1 => Body::Fingerprint(r.hash("a fingerprint")?),
            2 => {
                let n = r.varint("an item set's size")?;
                // Each item takes at least 33 bytes: no allocation beyond what was sent.
                let room = (buf.len() - r.at) / 33;
                if n > room as u64 {
                    return Err(SyncWireError::Truncated("an item set"));
                }
                let mut items = Vec::with_capacity(n as usize);
                let mut t = 0i64;
                for _ in 0..n {
                    t = r.time_after(t, "an item's time")?;
                    items.push(SyncId {
                        time: t,
                        hash: r.hash("an item's hash")?,
                    });
                }
                let reconciled = match r.byte("an item set's flag")? {
                    0 => false,
                    1 => true,
                    other => {
                        return Err(SyncWireError::Invalid(format!(
                            "an item set's reconciled flag of {other}"
                        )));
                    }
                };
                Body::ItemSet { items, reconciled }
            }
            other => {
                return Err(SyncWireError::Invalid(format!("range type {other}")));
            }
        };
        ranges.push(((lower, upper), body));
        lower = upper;
    }
    Ok(Payload {
        pubsub_topics,
        content_topics,
        ranges,
    })
}

/// Encodes a transfer frame's body.
pub fn encode_transfer(pubsub_topic: &str, message: &WakuMessage) -> Vec<u8> {
    // The payload field is required (proto2), so it is written even when empty, as the
    // reference node requires.
    let mut inner = Vec::new();
    message
        .to_proto()
        .encode(&mut inner)
        .expect("a Vec grows as needed");
    let mut out = Vec::with_capacity(inner.len() + pubsub_topic.len() + 8);
    prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut out);
    put_varint(&mut out, pubsub_topic.len() as u64);
    out.extend_from_slice(pubsub_topic.as_bytes());
    prost::encoding::encode_key(2, prost::encoding::WireType::LengthDelimited, &mut out);
    put_varint(&mut out, inner.len() as u64);
    out.extend_from_slice(&inner);
    out
}

/// The protobuf of a transfer frame.
#[derive(Clone, PartialEq, prost::Message)]
struct WakuMessageAndTopic {
    #[prost(string, tag = "1")]
    pubsub_topic: String,
    #[prost(bytes = "vec", optional, tag = "2")]
    message: Option<Vec<u8>>,
}

/// Decodes a transfer frame's body.
pub fn decode_transfer(buf: &[u8]) -> Result<(String, WakuMessage), SyncWireError> {
    let frame = WakuMessageAndTopic::decode(buf)
        .map_err(|e| SyncWireError::Invalid(format!("not a WakuMessageAndTopic: {e}")))?;
    let message = frame
        .message
        .ok_or_else(|| SyncWireError::Invalid("a transfer without its message".into()))?;
    if frame.pubsub_topic.is_empty() {
        return Err(SyncWireError::Invalid(
            "a transfer without its pubsub topic".into(),
        ));
    }
    let message = WakuMessage::decode(&message)
        .map_err(|e| SyncWireError::Invalid(format!("the message: {e}")))?;
    Ok((frame.pubsub_topic, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T_LO: i64 = 1_700_000_000_000_000_000;
    const S: i64 = 1_000_000_000;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '\n'], "")).unwrap()
    }

    fn topic() -> Vec<String> {
        vec!["/waku/2/rs/1/0".into()]
    }

    #[test]
    fn an_initial_payload_is_one_fingerprint_over_the_window() {
        // The bytes worked out by hand from the grammar above.
        let p = Payload {
            pubsub_topics: topic(),
            content_topics: vec![],
            ranges: vec![(
                (SyncId::at(T_LO), SyncId::at(T_LO + 3600 * S)),
                Body::Fingerprint([0x33; 32]),
            )],
        };
        let want = [
            hex("01 0e 2f77616b752f322f72732f312f30 00 8080a8b1e39fe7cb17 80c0e285e368 01"),
            vec![0x33; 32],
        ]
        .concat();
        assert_eq!(encode(&p), want);
        assert_eq!(want.len(), 65);
        assert_eq!(decode(&want).unwrap(), p);
    }

    #[test]
    fn a_skip_then_an_item_set_with_delta_encoded_times() {
        let t_a = T_LO + 450 * S + 1_000_000;
        let items = vec![
            SyncId {
                time: t_a,
                hash: [0x11; 32],
            },
            SyncId {
                time: t_a + 5,
                hash: [0x22; 32],
            },
        ];
        let mid = SyncId::at(T_LO + 450 * S);
        let p = Payload {
            pubsub_topics: topic(),
            content_topics: vec![],
            ranges: vec![
                ((SyncId::at(T_LO), mid), Body::Skip),
                (
                    (mid, SyncId::at(T_LO + 3600 * S)),
                    Body::ItemSet {
                        items,
                        reconciled: false,
                    },
                ),
            ],
        };
        let want = [
            hex("010e2f77616b752f322f72732f312f30 00 8080a8b1e39fe7cb17"),
            hex("80a8dcb08c0d 00"),
            hex("809886d5d65b 02 02 c0acc1e2eface7cb17"),
            vec![0x11; 32],
            hex("05"),
            vec![0x22; 32],
            hex("00"),
        ]
        .concat();
        assert_eq!(want.len(), 116);
        assert_eq!(encode(&p), want);
        assert_eq!(decode(&want).unwrap(), p);
    }

    #[test]
    fn the_final_payload_is_one_zero_byte_and_short_frames_have_no_ranges() {
        assert_eq!(encode(&Payload::default()), vec![0]);
        for short in [&[][..], &[0][..], &[7][..]] {
            assert_eq!(decode(short).unwrap(), Payload::default());
        }
        assert!(Payload::default().is_final());
    }

    #[test]
    fn a_bound_equal_in_time_carries_its_hash_prefix() {
        let mut hashed = SyncId::at(1002);
        hashed.hash[2] = 0x5a;
        let p = Payload {
            pubsub_topics: vec![],
            content_topics: vec![],
            ranges: vec![
                ((SyncId::at(1000), SyncId::at(1002)), Body::Skip),
                ((SyncId::at(1002), hashed), Body::Skip),
            ],
        };
        let want = hex("00 00 e807 02 00 00 03 00005a 00");
        assert_eq!(encode(&p), want);
        assert_eq!(decode(&want).unwrap(), p);
    }

    #[test]
    fn a_transfer_frame_is_topic_then_message() {
        let m = WakuMessage::builder("/app/1/chat/proto".parse().unwrap(), b"hi".to_vec())
            .timestamp(T_LO)
            .build()
            .unwrap();
        let bytes = encode_transfer("/waku/2/rs/1/0", &m);
        // Field 1, the topic; field 2, the message as proto3 writes it (no empty fields).
        let want = hex(
            "0a0e2f77616b752f322f72732f312f30 1221 0a026869 12112f6170702f312f636861742f70726f746f \
             508080d0e2c6bfce972f",
        );
        assert_eq!(bytes, want);
        assert_eq!(
            decode_transfer(&bytes).unwrap(),
            ("/waku/2/rs/1/0".into(), m.clone())
        );
        // The reference node's own bytes, every field written (worked out by hand).
        let theirs = hex(
            "0a0e2f77616b752f322f72732f312f30 122b 0a026869 12112f6170702f312f636861742f70726f746f \
             1800 508080d0e2c6bfce972f 5a00 aa0100 f80100",
        );
        let (topic, decoded) = decode_transfer(&theirs).unwrap();
        assert_eq!(
            (topic.as_str(), decoded.hash(&topic)),
            ("/waku/2/rs/1/0", m.hash("/waku/2/rs/1/0"))
        );
        assert_eq!(
            hex::encode(decoded.hash(&topic).as_bytes()),
            "2a38b813672073127162be9ad1f37e012a25f93a46e06c1af36a8f1a44718823"
        );
        // An empty payload is still written.
        let empty = WakuMessage::builder("/app/1/chat/proto".parse().unwrap(), Vec::new())
            .timestamp(T_LO)
            .build()
            .unwrap();
        let bytes = encode_transfer("/waku/2/rs/1/0", &empty);
        assert_eq!(&bytes[16..20], &hex("121f 0a00")[..]);
        assert_eq!(decode_transfer(&bytes).unwrap().1, empty);
    }

    #[test]
    fn malformed_payloads_are_refused_without_panics() {
        let good = encode(&Payload {
            pubsub_topics: topic(),
            content_topics: vec![],
            ranges: vec![(
                (SyncId::at(T_LO), SyncId::at(T_LO + 5)),
                Body::ItemSet {
                    items: vec![SyncId {
                        time: T_LO + 1,
                        hash: [1; 32],
                    }],
                    reconciled: true,
                },
            )],
        });
        for cut in 2..good.len() - 1 {
            // Cut inside a field: an error; cut between fields: no range survives.
            if let Ok(p) = decode(&good[..cut]) {
                assert!(p.ranges.is_empty(), "cut at {cut}: {p:?}");
            }
        }
        let mut bad_kind = good.clone();
        assert_eq!(bad_kind[27], 2, "the range type");
        bad_kind[27] = 3;
        assert!(decode(&bad_kind).is_err());
        // An item set claiming more items than bytes follow.
        let huge = hex("00 00 01 01 02 ffffffff0f");
        assert!(decode(&huge).is_err());
        // A ten-byte varint.
        assert!(decode(&hex("00 00 ffffffffffffffffff01 00")).is_err());
    }
}
