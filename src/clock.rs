//! The wall clock as Waku counts it: Unix time in nanoseconds (message timestamps) and seconds
//! (epochs). One place, so every check of a timestamp against "now" reads the same clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch; 0 if the system clock is set before 1970.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Whole seconds since the Unix epoch; 0 if the system clock is set before 1970.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
