//! The limits a Waku message must respect, and the typed errors for each.

use crate::topics::{ContentTopic, TopicError};

/// Limits applied by The Waku Network.
pub mod limits {
    /// Largest encoded message accepted (150 KiB).
    pub const MAX_ENCODED_LEN: usize = 150 * 1024;
    /// Largest `meta` field.
    pub const MAX_META_LEN: usize = 64;
    /// Timestamps below this are not nanoseconds (10^17 ns is March 1973); a value this small
    /// is almost certainly seconds, milliseconds or microseconds sent by mistake.
    pub const MIN_PLAUSIBLE_TIMESTAMP_NS: i64 = 100_000_000_000_000_000;
}

/// Why a message was refused.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The bytes are not a WakuMessage protobuf.
    #[error("not a valid WakuMessage protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The encoded message exceeds the network's size limit.
    #[error("message is {len} bytes encoded; the limit is {max} bytes")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `meta` is longer than 64 bytes.
    #[error("meta is {len} bytes; the limit is {} bytes", limits::MAX_META_LEN)]
    MetaTooLong {
        /// Length of the meta field.
        len: usize,
    },
    /// The content topic is malformed.
    #[error(transparent)]
    ContentTopic(#[from] TopicError),
    /// The timestamp is negative.
    #[error("timestamp {0} is negative; Waku timestamps are Unix time in nanoseconds")]
    NegativeTimestamp(i64),
    /// The timestamp is too small to be nanoseconds.
    #[error("timestamp {value} looks like {unit}; Waku timestamps are Unix time in nanoseconds")]
    TimestampNotNanos {
        /// The timestamp given.
        value: i64,
        /// The unit it most likely is in.
        unit: &'static str,
    },
}

pub(super) fn check_encoded_len(len: usize) -> Result<(), MessageError> {
    if len > limits::MAX_ENCODED_LEN {
        return Err(MessageError::TooLarge {
            len,
            max: limits::MAX_ENCODED_LEN,
        });
    }
    Ok(())
}

pub(super) fn check_meta(meta: &[u8]) -> Result<(), MessageError> {
    if meta.len() > limits::MAX_META_LEN {
        return Err(MessageError::MetaTooLong { len: meta.len() });
    }
    Ok(())
}

pub(super) fn content_topic(raw: &str) -> Result<ContentTopic, MessageError> {
    Ok(raw.parse()?)
}

/// Zero means "not set" to every implementation, so it passes; anything else must be a
/// plausible nanosecond value.
pub(super) fn check_timestamp(ts: i64) -> Result<(), MessageError> {
    if ts < 0 {
        return Err(MessageError::NegativeTimestamp(ts));
    }
    if ts != 0 && ts < limits::MIN_PLAUSIBLE_TIMESTAMP_NS {
        let unit = if ts < 100_000_000_000 {
            "seconds"
        } else if ts < 100_000_000_000_000 {
            "milliseconds"
        } else {
            "microseconds"
        };
        return Err(MessageError::TimestampNotNanos { value: ts, unit });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_other_units_are_named() {
        let unit = |ts| match check_timestamp(ts) {
            Err(MessageError::TimestampNotNanos { unit, .. }) => unit,
            other => panic!("{ts}: {other:?}"),
        };
        assert_eq!(unit(1_700_000_000), "seconds");
        assert_eq!(unit(1_700_000_000_000), "milliseconds");
        assert_eq!(unit(1_700_000_000_000_000), "microseconds");
        assert!(check_timestamp(1_700_000_000_000_000_000).is_ok());
        assert!(check_timestamp(0).is_ok());
        assert!(matches!(
            check_timestamp(-1),
            Err(MessageError::NegativeTimestamp(-1))
        ));
    }
}
