//! Request rate limits of the service protocols (store, lightpush, filter, peer exchange), per
//! peer and per IP address, set as the reference node sets them: `PROTOCOL:VOLUME/PERIOD`
//! (`store:100/1s`, `lightpush:10/1m`).
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

/// One `--rate-limit`: a protocol and its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// The protocol.
    pub service: Service,
    /// Its rate per peer.
    pub rate: Rate,
}

/// Why a `--rate-limit` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// Not `PROTOCOL:VOLUME/PERIOD`.
    #[error("a rate limit is PROTOCOL:VOLUME/PERIOD (for example store:100/1s), not {0:?}")]
    Format(String),
    /// An unknown protocol.
    #[error("unknown protocol {0:?} in a rate limit: use store, lightpush, filter or px")]
    Service(String),
    /// The volume is not a positive whole number.
    #[error("the volume of a rate limit must be a positive whole number, not {0:?}")]
    Volume(String),
    /// The period is not a positive duration.
    #[error("the period of a rate limit is a positive number with ms, s, m or h, not {0:?}")]
    Period(String),
}

impl FromStr for RateLimit {
    type Err = RateLimitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let format = || RateLimitError::Format(text.to_owned());
        let (service, rate) = text.trim().split_once(':').ok_or_else(format)?;
        let (volume, period) = rate.split_once('/').ok_or_else(format)?;
        let service = match service {
            "store" | "storev3" => Service::Store,
            "lightpush" => Service::Lightpush,
            "filter" => Service::Filter,
            "px" | "peer-exchange" => Service::PeerExchange,
            other => return Err(RateLimitError::Service(other.to_owned())),
        };
        let volume: u32 = volume
            .parse()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| RateLimitError::Volume(volume.to_owned()))?;
        let bad_period = || RateLimitError::Period(period.to_owned());
        let split = period
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(bad_period)?;
        let (count, unit) = period.split_at(split);
        let count: u64 = if count.is_empty() {
            1
        } else {
            count.parse().map_err(|_| bad_period())?
        };
        let unit = match unit {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3_600),
            _ => return Err(bad_period()),
        };
        let period = unit
            .checked_mul(u32::try_from(count).map_err(|_| bad_period())?)
            .filter(|p| !p.is_zero())
            .ok_or_else(bad_period)?;
        Ok(Self {
            service,
            rate: Rate { volume, period },
        })
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}/{}ms",
            self.service.name(),
            self.rate.volume,
            self.rate.period.as_millis()
        )
    }
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
    /// Limits as configured; a protocol named twice keeps its last rate.
    pub fn new(limits: &[RateLimit]) -> Self {
        Self {
            limiters: limits
                .iter()
                .map(|l| (l.service, Limiter::new(l.rate)))
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

    #[test]
    fn parses_the_reference_nodes_form() {
        let l: RateLimit = "store:100/1s".parse().unwrap();
        assert_eq!(l.service, Service::Store);
        assert_eq!(
            l.rate,
            Rate {
                volume: 100,
                period: Duration::from_secs(1)
            }
        );
        let l: RateLimit = "px:5/10m".parse().unwrap();
        assert_eq!(l.service, Service::PeerExchange);
        assert_eq!(l.rate.period, Duration::from_secs(600));
        let l: RateLimit = "lightpush:3/500ms".parse().unwrap();
        assert_eq!(l.rate.period, Duration::from_millis(500));
        assert!(matches!(
            "store".parse::<RateLimit>(),
            Err(RateLimitError::Format(_))
        ));
        assert!(matches!(
            "relay:1/1s".parse::<RateLimit>(),
            Err(RateLimitError::Service(_))
        ));
        assert!(matches!(
            "store:0/1s".parse::<RateLimit>(),
            Err(RateLimitError::Volume(_))
        ));
        assert!(matches!(
            "store:1/0s".parse::<RateLimit>(),
            Err(RateLimitError::Period(_))
        ));
        assert!(matches!(
            "store:1/1d".parse::<RateLimit>(),
            Err(RateLimitError::Period(_))
        ));
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
