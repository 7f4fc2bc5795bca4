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

/// A source of "now" in Unix nanoseconds: the system clock in the node, a clock the test moves
/// in tests.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Nanoseconds since the Unix epoch.
    fn now_ns(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> i64 {
        now_ns()
    }
}

/// A clock that reads what it was set to, for tests that move time.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    /// A clock reading `now_ns`.
    pub fn at(now_ns: i64) -> Self {
        Self(std::sync::atomic::AtomicI64::new(now_ns))
    }

    /// Sets the clock to `now_ns`.
    pub fn set(&self, now_ns: i64) {
        self.0.store(now_ns, std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves the clock by `by` (backwards for a negative duration is not possible: use
    /// [`Self::set`]).
    pub fn advance(&self, by: std::time::Duration) {
        let by = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        self.0.fetch_add(by, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
