//! Request rate limits of the service protocols (store, lightpush, filter, peer exchange), per
//! peer and per IP address, set as the reference node sets them: `[PROTOCOL:]VOLUME/PERIOD`
//! (`store:100/1s`, `lightpush:10/1m`, `10/1m` for every protocol), with its defaults (filter 30
//! a minute per peer, the others unlimited).
//!
//! Where we differ: the reference node adds one bucket for the whole service, which lets a
//! single flooder take every other client's share; we count per IP address instead.
//!
//! Peer ids cost nothing, addresses do: a peer may send `VOLUME` requests per `PERIOD`, and one
//! IP address [`PEERS_PER_ADDRESS`] times that, however many peer ids it uses. A request over
//! either limit is answered with the protocol's "too many requests" status and costs nothing
//! more. Windows are fixed (`PERIOD` long from a key's first request), and the keys tracked are
//! bounded: when [`MAX_TRACKED`] keys are in their window, new keys are refused until windows
//! end, which only a flood of fresh peer ids and addresses can cause.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    str::FromStr,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use libp2p::PeerId;

/// How many peers' worth of requests one IP address may send (peers behind one NAT share it).
pub const PEERS_PER_ADDRESS: u32 = 5;

/// Keys (peers or addresses) tracked per protocol at most.
pub const MAX_TRACKED: usize = 10_000;

/// A rate-limited service protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Store v3 queries.
    Store,
    /// Lightpush v3 and v2 requests.
    Lightpush,
    /// Filter subscribe requests (pings included).
    Filter,
    /// Peer-exchange requests.
    PeerExchange,
}

impl Service {
    /// The name in `--rate-limit`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Store => "store",
            Self::Lightpush => "lightpush",
            Self::Filter => "filter",
            Self::PeerExchange => "px",
        }
    }
}

/// A number of requests per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed in one period.
    pub volume: u32,
    /// The period.
    pub period: Duration,
}

/// What one `--rate-limit` applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every protocol without a limit of its own (no protocol named).
    All,
    /// `store` (store v3, and legacy store v2 in the reference node): applies unless a
    /// `storev3` limit was already given.
    Store,
    /// One protocol (`storev3` is [`Service::Store`] exactly).
    Only(Service),
    /// `storev2`, the legacy store this node does not serve: accepted and ignored.
    LegacyStore,
}

/// One `--rate-limit`: what it applies to and its rate per peer (`None`: no limit, from a
/// volume or period of 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// What it applies to.
    pub scope: Scope,
    /// Its rate per peer.
    pub rate: Option<Rate>,
}

/// The reference node's default: filter requests are limited to 30 a minute per peer, the
/// other protocols are not limited.
pub const FILTER_DEFAULT: Rate = Rate {
    volume: 30,
    period: Duration::from_secs(60),
};

/// Why a `--rate-limit` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// Not `[PROTOCOL:]VOLUME/PERIOD`.
    #[error(
        "a rate limit is [PROTOCOL:]VOLUME/PERIOD (for example store:100/1s, or 10/1m for \
         every protocol), not {0:?}"
    )]
    Format(String),
    /// An unknown protocol.
    #[error(
        "unknown protocol {0:?} in a rate limit: use store, storev2, storev3, lightpush, \
         filter or px"
    )]
    Service(String),
    /// The volume is not a whole number.
    #[error("the volume of a rate limit must be a whole number, not {0:?}")]
    Volume(String),
    /// The period is not a number with a unit.
    #[error("the period of a rate limit is a whole number with ms, s, m or h, not {0:?}")]
    Period(String),
}

impl FromStr for RateLimit {
    type Err = RateLimitError;

    /// Reads the reference node's form: `[PROTOCOL:]VOLUME/PERIOD`, case-insensitive, with
    /// spaces allowed around each part (`store:10/1m`, `  store : 10  /1h`, `px:10/2 s`,
    /// `10/2m`). A volume or period of 0 means no limit.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let format = || RateLimitError::Format(text.to_owned());
        let lower = text.to_ascii_lowercase();
        let (scope, rate) = match lower.split_once(':') {
            Some((protocol, rate)) => {
                let scope = match protocol.trim() {
                    "store" => Scope::Store,
                    "storev3" => Scope::Only(Service::Store),
                    "storev2" => Scope::LegacyStore,
                    "lightpush" => Scope::Only(Service::Lightpush),
                    "filter" => Scope::Only(Service::Filter),
                    "px" => Scope::Only(Service::PeerExchange),
                    "" => return Err(format()),
                    other => return Err(RateLimitError::Service(other.to_owned())),
                };
                (scope, rate)
            }
            None => (Scope::All, lower.as_str()),
        };
        let (volume, period) = rate.split_once('/').ok_or_else(format)?;
        let volume_text = volume.trim();
        if volume_text.is_empty() || !volume_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RateLimitError::Volume(volume.trim().to_owned()));
        }
        let volume: u32 = volume_text
            .parse()
            .map_err(|_| RateLimitError::Volume(volume_text.to_owned()))?;
        let period_text = period.trim();
        let bad_period = || RateLimitError::Period(period_text.to_owned());
        let digits = period_text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(bad_period)?;
        let (count, unit) = period_text.split_at(digits);
        if count.is_empty() {
            return Err(bad_period());
        }
        let count: u32 = count.parse().map_err(|_| bad_period())?;
        let unit = match unit.trim_start() {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3_600),
            _ => return Err(bad_period()),
        };
        let period = unit.checked_mul(count).ok_or_else(bad_period)?;
        let rate = (volume > 0 && !period.is_zero()).then_some(Rate { volume, period });
        Ok(Self { scope, rate })
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.scope {
            Scope::All => {}
            Scope::Store => f.write_str("store:")?,
            Scope::Only(s) => write!(f, "{}:", s.name())?,
            Scope::LegacyStore => f.write_str("storev2:")?,
        }
        match self.rate {
            Some(r) => write!(f, "{}/{}ms", r.volume, r.period.as_millis()),
            None => f.write_str("0/1s"),
        }
    }
}

/// The rate each protocol gets from `limits`, as the reference node resolves them: a
/// protocol's own limit, else its default (30 filter requests a minute), else the limit for
/// every protocol, else none. A later limit replaces an earlier one, except that
/// `store` never replaces a `storev3` given before it.
pub fn resolve(limits: &[RateLimit]) -> HashMap<Service, Rate> {
    let mut own: HashMap<Service, Option<Rate>> = HashMap::new();
    let mut all: Option<Option<Rate>> = None;
    for l in limits {
        match l.scope {
            Scope::All => all = Some(l.rate),
            Scope::Only(s) => {
                own.insert(s, l.rate);
            }
            Scope::Store => {
                own.entry(Service::Store).or_insert(l.rate);
            }
            Scope::LegacyStore => {}
        }
    }
    [
        Service::Store,
        Service::Lightpush,
        Service::Filter,
        Service::PeerExchange,
    ]
    .into_iter()
    .filter_map(|s| {
        // Filter has a default of its own, which the limit for every protocol does not
        // replace.
        let fallback = if s == Service::Filter {
            Some(FILTER_DEFAULT)
        } else {
            all.flatten()
        };
        let rate = own.get(&s).copied().unwrap_or(fallback)?;
        Some((s, rate))
    })
    .collect()
}

/// Requests counted in one key's current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    used: u32,
}

/// Fixed windows per key, bounded in keys.
#[derive(Debug)]
struct Windows<K> {
    volume: u32,
    period: Duration,
    keys: HashMap<K, Window>,
}

impl<K: Hash + Eq> Windows<K> {
    fn new(volume: u32, period: Duration) -> Self {
        Self {
            volume,
            period,
            keys: HashMap::new(),
        }
    }

    /// Whether `key` has room for one more request at `now` (nothing is counted).
    fn has_room(&mut self, key: &K, now: Instant) -> bool {
        match self.keys.get(key) {
            Some(w) if now.duration_since(w.started) < self.period => w.used < self.volume,
            Some(_) => true,
            None => {
                if self.keys.len() >= MAX_TRACKED {
                    let period = self.period;
                    self.keys
                        .retain(|_, w| now.duration_since(w.started) < period);
                }
                self.keys.len() < MAX_TRACKED
            }
        }
    }

    /// Counts one request of `key` (after [`Self::has_room`] said yes).
    fn count(&mut self, key: K, now: Instant) {
        let period = self.period;
        let w = self.keys.entry(key).or_insert(Window {
            started: now,
            used: 0,
        });
        if now.duration_since(w.started) >= period {
            *w = Window {
                started: now,
                used: 0,
            };
        }
        w.used += 1;
    }
}

/// The limits of one protocol.
#[derive(Debug)]
struct Limiter {
    state: Mutex<(Windows<PeerId>, Windows<IpAddr>)>,
}

impl Limiter {
    fn new(rate: Rate) -> Self {
        Self {
            state: Mutex::new((
                Windows::new(rate.volume, rate.period),
                Windows::new(rate.volume.saturating_mul(PEERS_PER_ADDRESS), rate.period),
            )),
        }
    }

    fn allow(&self, peer: PeerId, address: Option<IpAddr>, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (peers, addresses) = &mut *state;
        if !peers.has_room(&peer, now) || address.is_some_and(|a| !addresses.has_room(&a, now)) {
            return false;
        }
        peers.count(peer, now);
        if let Some(a) = address {
            addresses.count(a, now);
        }
        true
    }
}

/// The node's rate limits, one per limited protocol.
#[derive(Debug, Default)]
pub struct RateLimits {
    limiters: HashMap<Service, Limiter>,
}

impl RateLimits {
    /// Limits as configured, resolved by [`resolve`].
    pub fn new(limits: &[RateLimit]) -> Self {
        Self {
            limiters: resolve(limits)
                .into_iter()
                .map(|(service, rate)| (service, Limiter::new(rate)))
                .collect(),
        }
    }

    /// Takes one request of `service` by `peer` from `address`: false when the peer or the
    /// address is over its limit. Always true for a protocol without a limit.
    pub fn allow(&self, service: Service, peer: PeerId, address: Option<IpAddr>) -> bool {
        self.allow_at(service, peer, address, Instant::now())
    }

    /// [`Self::allow`] at `now`.
    pub fn allow_at(
        &self,
        service: Service,
        peer: PeerId,
        address: Option<IpAddr>,
        now: Instant,
    ) -> bool {
        self.limiters
            .get(&service)
            .is_none_or(|l| l.allow(peer, address, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(volume: u32, period: Duration) -> Option<Rate> {
        Some(Rate { volume, period })
    }

    /// The cases of the reference node's own parser test (`tests/common/
    /// test_ratelimit_setting.nim`), accepted and refused alike.
    #[test]
    fn parses_what_the_reference_node_parses() {
        let ok = |text: &str, scope: Scope, r: Option<Rate>| {
            let l: RateLimit = text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!((l.scope, l.rate), (scope, r), "{text:?}");
        };
        let (s, m, h, ms) = (
            Duration::from_secs(1),
            Duration::from_secs(60),
            Duration::from_secs(3_600),
            Duration::from_millis(1),
        );
        ok("10/2m", Scope::All, rate(10, 2 * m));
        ok("  store : 10  /1h", Scope::Store, rate(10, h));
        ok(
            "storeV3:        12  /1s",
            Scope::Only(Service::Store),
            rate(12, s),
        );
        ok(
            "LIGHTPUSH: 10/ 1m",
            Scope::Only(Service::Lightpush),
            rate(10, m),
        );
        ok(
            "px:10/2 s ",
            Scope::Only(Service::PeerExchange),
            rate(10, 2 * s),
        );
        ok(
            "filter:42/66ms",
            Scope::Only(Service::Filter),
            rate(42, 66 * ms),
        );
        ok("storev2:1/1s", Scope::LegacyStore, rate(1, s));
        // A volume or period of 0 lifts the limit.
        ok("store:0/1s", Scope::Store, None);
        ok("lightpush:5/0s", Scope::Only(Service::Lightpush), None);
        for bad in [
            "10/2d",
            "  stre : 10  /1h",
            "storev2 10  /1h",
            "storev3:        12 1s",
            "somethingelse: 10/ 1m",
            ":px:10/2 s ",
            "filter:p42/66ms",
            "store",
            "store:-1/1s",
        ] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad:?} was accepted");
        }
    }

    /// The reference node's resolution cases, and its defaults.
    #[test]
    fn resolves_as_the_reference_node_does() {
        let parse =
            |list: &[&str]| -> Vec<RateLimit> { list.iter().map(|l| l.parse().unwrap()).collect() };
        let (s, m) = (Duration::from_secs(1), Duration::from_secs(60));
        // Nothing given: filter 30 a minute, the rest unlimited.
        let none = resolve(&[]);
        assert_eq!(none.len(), 1);
        assert_eq!(none[&Service::Filter], FILTER_DEFAULT);
        let r = resolve(&parse(&[
            "lightpush:2/2ms",
            "10/2m",
            " store: 3/3s",
            " storev2:12/12s",
        ]));
        assert_eq!(
            Some(r[&Service::Lightpush]),
            rate(2, Duration::from_millis(2))
        );
        assert_eq!(Some(r[&Service::Store]), rate(3, 3 * s));
        // px falls back on the limit for every protocol; filter keeps its own default.
        assert_eq!(Some(r[&Service::PeerExchange]), rate(10, 2 * m));
        assert_eq!(r[&Service::Filter], FILTER_DEFAULT);
        // `store` does not replace a storev3 given before it; a later storev3 wins.
        let r = resolve(&parse(&[
            "storev2:1/1s",
            "store:3/3s",
            "storev3:4/42ms",
            "storev3:5/5s",
            "storev3:6/6s",
        ]));
        assert_eq!(Some(r[&Service::Store]), rate(6, 6 * s));
        let r = resolve(&parse(&["storev3:4/4s", "store:3/3s"]));
        assert_eq!(Some(r[&Service::Store]), rate(4, 4 * s));
        // 0 lifts a limit, the filter default included.
        let r = resolve(&parse(&["filter:0/1s"]));
        assert!(r.is_empty());
    }

    #[test]
    fn a_peer_gets_its_volume_per_period_and_an_address_five_peers_worth() {
        let limits = RateLimits::new(&["store:2/1s".parse().unwrap()]);
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let peer = PeerId::random();
        assert!(limits.allow_at(Service::Store, peer, Some(ip), t0));
        assert!(limits.allow_at(Service::Store, peer, Some(ip), t0));
        assert!(!limits.allow_at(Service::Store, peer, Some(ip), t0));
        // Other protocols are not limited.
        assert!(limits.allow_at(Service::Lightpush, peer, Some(ip), t0));
        // The next window.
        let t1 = t0 + Duration::from_secs(1);
        assert!(limits.allow_at(Service::Store, peer, Some(ip), t1));
        // New peer ids from the same address: 10 requests per window in all.
        let mut allowed = 0;
        for _ in 0..20 {
            let sybil = PeerId::random();
            for _ in 0..2 {
                allowed += usize::from(limits.allow_at(Service::Store, sybil, Some(ip), t1));
            }
        }
        assert_eq!(
            allowed, 9,
            "the address had used 1 of its 10 in this window"
        );
        // Another address is not affected.
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(limits.allow_at(Service::Store, PeerId::random(), Some(other), t1));
    }

    #[test]
    fn the_keys_tracked_stay_bounded() {
        let limits = RateLimits::new(&["filter:1/1m".parse().unwrap()]);
        let t0 = Instant::now();
        for _ in 0..MAX_TRACKED {
            assert!(limits.allow_at(Service::Filter, PeerId::random(), None, t0));
        }
        // Full: a new peer waits for the windows to end.
        assert!(!limits.allow_at(Service::Filter, PeerId::random(), None, t0));
        let later = t0 + Duration::from_secs(60);
        assert!(limits.allow_at(Service::Filter, PeerId::random(), None, later));
        let l = &limits.limiters[&Service::Filter];
        assert_eq!(l.state.lock().unwrap().0.keys.len(), 1);
    }
}
