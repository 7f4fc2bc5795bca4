//! RLN epochs as Waku counts them: `floor(unix_seconds / period)`, carried on the wire as a
//! u64 little-endian in 32 zero-padded bytes and fed to the circuit as a field element.

use std::fmt;

use crate::field::{FR_BYTES, Fr};

/// The epoch length on The Waku Network, in seconds.
pub const DEFAULT_EPOCH_PERIOD_SECS: u64 = 600;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Why bytes could not be read as an epoch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    /// Not exactly 32 bytes.
    #[error("an epoch is 32 bytes (u64 little-endian, zero padded), got {0} bytes")]
    WrongLength(usize),
    /// One of bytes 8..32 is not zero, so the value does not fit a u64.
    #[error("epoch bytes 8..32 must be zero (the epoch is a u64), byte {index} is {value:#04x}")]
    HighBytesNotZero {
        /// Position of the first non-zero padding byte.
        index: usize,
        /// Its value.
        value: u8,
    },
}

/// The number of whole epoch periods since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch containing `secs` seconds of Unix time.
    ///
    /// # Panics
    /// If `period_secs` is zero: the period is fixed configuration, which must refuse zero
    /// before any message is handled.
    pub fn from_unix_seconds(secs: u64, period_secs: u64) -> Self {
        assert!(
            period_secs > 0,
            "the epoch period must be at least 1 second"
        );
        Self(secs / period_secs)
    }

    /// The epoch containing a Waku timestamp (Unix nanoseconds).
    ///
    /// A negative timestamp (before 1970) maps to epoch 0; validated messages never carry one,
    /// and a proof for epoch 0 fails the clock check anyway.
    ///
    /// # Panics
    /// If `period_secs` is zero (see [`Epoch::from_unix_seconds`]).
    pub fn from_timestamp_ns(ns: i64, period_secs: u64) -> Self {
        let secs = u64::try_from(ns).unwrap_or(0) / NANOS_PER_SEC;
        Self::from_unix_seconds(secs, period_secs)
    }

    /// The 32-byte wire form: u64 little-endian followed by 24 zero bytes.
    pub fn to_bytes(self) -> [u8; FR_BYTES] {
        let mut out = [0u8; FR_BYTES];
        out[..8].copy_from_slice(&self.0.to_le_bytes());
        out
    }

    /// Reads the 32-byte wire form, refusing any other length and non-zero padding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EpochError> {
        if bytes.len() != FR_BYTES {
            return Err(EpochError::WrongLength(bytes.len()));
        }
        let (low, high) = bytes.split_at(8);
        if let Some((offset, &value)) = high.iter().enumerate().find(|(_, b)| **b != 0) {
            return Err(EpochError::HighBytesNotZero {
                index: 8 + offset,
                value,
            });
        }
        let mut le = [0u8; 8];
        le.copy_from_slice(low);
        Ok(Self(u64::from_le_bytes(le)))
    }

    /// The epoch as the circuit and Poseidon see it: the same little-endian integer.
    pub fn to_field(self) -> Fr {
        Fr::from(self.0)
    }

    /// How many epochs lie between `self` and `other`, in either direction.
    pub fn abs_diff(self, other: Epoch) -> u64 {
        self.0.abs_diff(other.0)
    }
}

impl From<u64> for Epoch {
    fn from(value: u64) -> Self {
        Self(value)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use crate::field::to_le_bytes;

    use super::*;

    #[test]
    fn epoch_is_floor_of_seconds_over_period() {
        assert_eq!(Epoch::from_unix_seconds(0, 600), Epoch(0));
        assert_eq!(Epoch::from_unix_seconds(599, 600), Epoch(0));
        assert_eq!(Epoch::from_unix_seconds(600, 600), Epoch(1));
        assert_eq!(
            Epoch::from_unix_seconds(1_700_000_000, DEFAULT_EPOCH_PERIOD_SECS),
            Epoch(2_833_333)
        );
        assert_eq!(Epoch::from_unix_seconds(7, 1), Epoch(7));
    }

    #[test]
    fn epoch_of_nanosecond_timestamps() {
        let ns = 1_700_000_000_123_456_789;
        assert_eq!(Epoch::from_timestamp_ns(ns, 600), Epoch(2_833_333));
        assert_eq!(
            Epoch::from_timestamp_ns(599_999_999_999, 600),
            Epoch(0),
            "one nanosecond before the boundary"
        );
        assert_eq!(Epoch::from_timestamp_ns(600_000_000_000, 600), Epoch(1));
        assert_eq!(Epoch::from_timestamp_ns(-5, 600), Epoch(0));
        assert_eq!(Epoch::from_timestamp_ns(i64::MIN, 600), Epoch(0));
    }

    #[test]
    #[should_panic(expected = "epoch period")]
    fn zero_period_is_a_programming_error() {
        let _ = Epoch::from_unix_seconds(1, 0);
    }

    #[test]
    fn bytes_are_u64_le_zero_padded() {
        let epoch = Epoch(0x0102_0304_0506_0708);
        let bytes = epoch.to_bytes();
        assert_eq!(&bytes[..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert!(bytes[8..].iter().all(|b| *b == 0));
        assert_eq!(Epoch::from_bytes(&bytes), Ok(epoch));
        assert_eq!(
            Epoch::from_bytes(&Epoch(u64::MAX).to_bytes()),
            Ok(Epoch(u64::MAX))
        );
        // The field element reads the same bytes.
        assert_eq!(to_le_bytes(&epoch.to_field()), bytes);
    }

    #[test]
    fn refuses_wrong_length_and_high_bytes() {
        assert_eq!(Epoch::from_bytes(&[0; 8]), Err(EpochError::WrongLength(8)));
        assert_eq!(
            Epoch::from_bytes(&[0; 33]),
            Err(EpochError::WrongLength(33))
        );
        assert_eq!(Epoch::from_bytes(&[]), Err(EpochError::WrongLength(0)));
        let mut bytes = Epoch(1).to_bytes();
        bytes[8] = 1;
        assert_eq!(
            Epoch::from_bytes(&bytes),
            Err(EpochError::HighBytesNotZero { index: 8, value: 1 })
        );
        let mut bytes = Epoch(1).to_bytes();
        bytes[31] = 0x80;
        assert_eq!(
            Epoch::from_bytes(&bytes),
            Err(EpochError::HighBytesNotZero {
                index: 31,
                value: 0x80
            })
        );
    }

    #[test]
    fn gap_is_symmetric() {
        assert_eq!(Epoch(10).abs_diff(Epoch(7)), 3);
        assert_eq!(Epoch(7).abs_diff(Epoch(10)), 3);
        assert_eq!(Epoch(0).abs_diff(Epoch(u64::MAX)), u64::MAX);
        assert_eq!(Epoch(5).abs_diff(Epoch(5)), 0);
    }
}
