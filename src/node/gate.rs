//! The connection gate: who may hold a connection slot.
//!
//! One actor must not be able to take every slot, so the gate keeps separate limits for
//! inbound and outbound connections, for handshakes in flight, and for inbound connections
//! from one IP address (peer ids cost nothing, addresses do). Static peers bypass every limit
//! but the per-peer one: their slots are reserved. Peers the relay disconnects for a low score
//! are refused for a backoff period, and an address whose peers keep being banned is refused
//! as a whole (loopback excepted), so a spammer cannot come straight back under a new peer id.
//!
//! Every map here is bounded: connections by the limits themselves, bans by [`MAX_BANS`].

use std::{
    collections::{HashMap, HashSet},
    convert::Infallible,
    net::IpAddr,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use libp2p::{
    Multiaddr, PeerId,
    core::{ConnectedPoint, Endpoint, transport::PortUse},
    multiaddr::Protocol,
    swarm::{
        ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
        THandlerInEvent, THandlerOutEvent, ToSwarm,
        behaviour::{ConnectionEstablished, DialFailure, ListenFailure},
        dummy,
    },
};

/// Most bans remembered at once (peers and addresses each); the oldest go first.
pub const MAX_BANS: usize = 10_000;

/// Peer ids banned from one address before the address itself is banned.
const BANNED_PEERS_PER_IP: usize = 3;

/// How many connections of each kind the node accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Established inbound connections (static peers not counted).
    pub max_inbound: u32,
    /// Established outbound connections (static peers not counted).
    pub max_outbound: u32,
    /// Inbound connections still in their handshake.
    pub max_pending_inbound: u32,
    /// Outbound dials in flight (static peers not counted).
    pub max_pending_outbound: u32,
    /// Established and pending inbound connections from one IP address; 0 for no limit.
    pub max_inbound_per_ip: u32,
    /// Connections to one peer.
    pub max_per_peer: u32,
}

impl Limits {
    /// Limits for `max_connections` in all: a third outbound, as the reference node splits
    /// its relay peers, the rest inbound, and `per_ip` inbound connections per address.
    pub fn of_total(max_connections: u32, per_ip: u32) -> Self {
        let max_outbound = (max_connections / 3).max(1);
        Self {
            max_inbound: max_connections.saturating_sub(max_outbound).max(1),
            max_outbound,
            max_pending_inbound: 32,
            max_pending_outbound: 32,
            max_inbound_per_ip: per_ip,
            max_per_peer: 2,
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refused {
    /// A limit is reached.
    #[error("the {what} limit of {limit} connections is reached")]
    Limit {
        /// Which limit.
        what: &'static str,
        /// Its value.
        limit: u32,
    },
    /// The peer was disconnected for a low relay score and is banned for a while.
    #[error("peer {0} is banned for a while after it was disconnected for spam")]
    BannedPeer(PeerId),
    /// Too many peers of this address were banned.
    #[error("address {0} is banned for a while after several of its peers sent spam")]
    BannedAddress(IpAddr),
}

impl Refused {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Limit { what, .. } => what,
            Self::BannedPeer(_) => "banned_peer",
            Self::BannedAddress(_) => "banned_address",
        }
    }
}

fn deny(refused: Refused) -> ConnectionDenied {
    ConnectionDenied::new(refused)
}

fn check(what: &'static str, limit: u32, current: usize) -> Result<(), ConnectionDenied> {
    if current >= limit as usize {
        return Err(deny(Refused::Limit { what, limit }));
    }
    Ok(())
}

/// The IP address of a multiaddr, if it starts with one.
pub fn ip_of(address: &Multiaddr) -> Option<IpAddr> {
    address.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// Time-limited bans, bounded in number.
#[derive(Debug)]
struct Bans<K> {
    until: HashMap<K, Instant>,
}

impl<K> Default for Bans<K> {
    fn default() -> Self {
        Self {
            until: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Copy> Bans<K> {
    fn is_banned(&self, key: &K, now: Instant) -> bool {
        self.until.get(key).is_some_and(|t| *t > now)
    }

    fn ban(&mut self, key: K, until: Instant, now: Instant) {
        if self.until.len() >= MAX_BANS {
            self.until.retain(|_, t| *t > now);
        }
        if self.until.len() >= MAX_BANS {
            // Still full of live bans: forget the one that ends first.
            if let Some(first) = self.until.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                self.until.remove(&first);
            }
        }
        self.until.insert(key, until);
    }
}

/// The connection gate, a libp2p behaviour with no protocol of its own.
#[derive(Debug)]
pub struct Behaviour {
    limits: Limits,
    reserved: HashSet<PeerId>,
    pending_inbound: HashMap<ConnectionId, Option<IpAddr>>,
    pending_outbound: HashSet<ConnectionId>,
    inbound: HashMap<ConnectionId, Option<IpAddr>>,
    outbound: HashSet<ConnectionId>,
    per_peer: HashMap<PeerId, HashSet<ConnectionId>>,
    banned_peers: Bans<PeerId>,
    banned_ips: Bans<IpAddr>,
    /// Peers banned per address, to ban an address that keeps sending new spammers.
    bans_per_ip: HashMap<IpAddr, HashSet<PeerId>>,
    refused: Vec<Refused>,
}

impl Behaviour {
    /// A gate enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            reserved: HashSet::new(),
            pending_inbound: HashMap::new(),
            pending_outbound: HashSet::new(),
            inbound: HashMap::new(),
            outbound: HashSet::new(),
            per_peer: HashMap::new(),
            banned_peers: Bans::default(),
            banned_ips: Bans::default(),
            bans_per_ip: HashMap::new(),
            refused: Vec::new(),
        }
    }

    /// Reserves slots for `peer` (a static peer): no limit but the per-peer one applies.
    pub fn reserve(&mut self, peer: PeerId) {
        self.reserved.insert(peer);
    }

    /// How many more outbound connections the limits allow now (static peers aside).
    pub fn outbound_room(&self) -> usize {
        (self.limits.max_outbound as usize).saturating_sub(self.outbound.len())
    }

    /// Whether `peer` has reserved slots.
    pub fn is_reserved(&self, peer: &PeerId) -> bool {
        self.reserved.contains(peer)
    }

    /// Refuses `peer` for `period`, and its address `ip` too once several of its peers were
    /// banned. Returns whether the address is now banned.
    pub fn ban(&mut self, peer: PeerId, ip: Option<IpAddr>, period: Duration) -> bool {
        let now = Instant::now();
        self.banned_peers.ban(peer, now + period, now);
        // The operator's own processes (and every peer of a local test network) share the
        // loopback address: banning it would cut them all off.
        let Some(ip) = ip.filter(|ip| !ip.is_loopback()) else {
            return false;
        };
        if self.bans_per_ip.len() >= MAX_BANS && !self.bans_per_ip.contains_key(&ip) {
            self.bans_per_ip.clear();
        }
        let peers = self.bans_per_ip.entry(ip).or_default();
        peers.insert(peer);
        if peers.len() >= BANNED_PEERS_PER_IP {
            self.bans_per_ip.remove(&ip);
            self.banned_ips.ban(ip, now + period, now);
            return true;
        }
        false
    }

    /// Whether `peer` is banned now.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.banned_peers.is_banned(peer, Instant::now())
    }

    /// The connections refused since the last call, for metrics.
    pub fn take_refused(&mut self) -> Vec<Refused> {
        std::mem::take(&mut self.refused)
    }

    /// Established inbound connections from `ip`.
    pub fn inbound_from(&self, ip: IpAddr) -> usize {
        self.inbound.values().filter(|i| **i == Some(ip)).count()
    }

    fn inbound_and_pending_from(&self, ip: IpAddr) -> usize {
        self.inbound_from(ip)
            + self
                .pending_inbound
                .values()
                .filter(|i| **i == Some(ip))
                .count()
    }

    fn refuse(&mut self, result: Result<(), ConnectionDenied>) -> Result<(), ConnectionDenied> {
        if let Err(e) = &result
            && let Some(r) = e.downcast_ref::<Refused>()
        {
            if self.refused.len() < 1_024 {
                self.refused.push(r.clone());
            }
            tracing::debug!(reason = %r, "connection refused");
        }
        result
    }

    fn admit_pending_inbound(&self, ip: Option<IpAddr>) -> Result<(), ConnectionDenied> {
        if let Some(ip) = ip {
            if self.banned_ips.is_banned(&ip, Instant::now()) {
                return Err(deny(Refused::BannedAddress(ip)));
            }
            if self.limits.max_inbound_per_ip > 0 {
                check(
                    "per_ip",
                    self.limits.max_inbound_per_ip,
                    self.inbound_and_pending_from(ip),
                )?;
            }
        }
        check(
            "pending_inbound",
            self.limits.max_pending_inbound,
            self.pending_inbound.len(),
        )
    }

    fn admit_established(&self, peer: PeerId, inbound: bool) -> Result<(), ConnectionDenied> {
        if self.is_banned(&peer) {
            return Err(deny(Refused::BannedPeer(peer)));
        }
        check(
            "per_peer",
            self.limits.max_per_peer,
            self.per_peer.get(&peer).map_or(0, HashSet::len),
        )?;
        if self.is_reserved(&peer) {
            return Ok(());
        }
        if inbound {
            check("inbound", self.limits.max_inbound, self.inbound.len())
        } else {
            check("outbound", self.limits.max_outbound, self.outbound.len())
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let ip = ip_of(remote);
        let result = self.admit_pending_inbound(ip);
        self.refuse(result)?;
        self.pending_inbound.insert(connection_id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.pending_inbound.remove(&connection_id);
        let result = self.admit_established(peer, true);
        self.refuse(result)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: Option<PeerId>,
        _addresses: &[Multiaddr],
        _role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if let Some(peer) = peer {
            if self.is_banned(&peer) {
                let result = Err(deny(Refused::BannedPeer(peer)));
                self.refuse(result)?;
            }
            if self.is_reserved(&peer) {
                return Ok(Vec::new());
            }
        }
        let result = check(
            "pending_outbound",
            self.limits.max_pending_outbound,
            self.pending_outbound.len(),
        );
        self.refuse(result)?;
        self.pending_outbound.insert(connection_id);
        Ok(Vec::new())
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        _address: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.pending_outbound.remove(&connection_id);
        let result = self.admit_established(peer, false);
        self.refuse(result)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            }) => {
                match endpoint {
                    ConnectedPoint::Listener { send_back_addr, .. } => {
                        self.inbound.insert(connection_id, ip_of(send_back_addr));
                    }
                    ConnectedPoint::Dialer { .. } => {
                        self.outbound.insert(connection_id);
                    }
                }
                self.per_peer
                    .entry(peer_id)
                    .or_default()
                    .insert(connection_id);
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                ..
            }) => {
                self.inbound.remove(&connection_id);
                self.outbound.remove(&connection_id);
                if let Some(set) = self.per_peer.get_mut(&peer_id) {
                    set.remove(&connection_id);
                    if set.is_empty() {
                        self.per_peer.remove(&peer_id);
                    }
                }
            }
            FromSwarm::DialFailure(DialFailure { connection_id, .. }) => {
                self.pending_outbound.remove(&connection_id);
            }
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.pending_inbound.remove(&connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_split_a_third_outbound() {
        let l = Limits::of_total(50, 10);
        assert_eq!((l.max_inbound, l.max_outbound), (34, 16));
        let tiny = Limits::of_total(1, 0);
        assert!(tiny.max_inbound >= 1 && tiny.max_outbound >= 1);
    }

    #[test]
    fn an_address_is_banned_after_several_of_its_peers() {
        let mut gate = Behaviour::new(Limits::of_total(50, 10));
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let period = Duration::from_secs(60);
        for n in 1..BANNED_PEERS_PER_IP {
            let peer = PeerId::random();
            assert!(!gate.ban(peer, Some(ip), period), "after {n} peers");
            assert!(gate.is_banned(&peer));
        }
        assert!(gate.ban(PeerId::random(), Some(ip), period));
        assert!(gate.banned_ips.is_banned(&ip, Instant::now()));
        assert!(gate.admit_pending_inbound(Some(ip)).is_err());
        assert!(
            gate.admit_pending_inbound(Some("10.0.0.8".parse().unwrap()))
                .is_ok()
        );
        // Loopback is never banned as a whole.
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..BANNED_PEERS_PER_IP + 1 {
            assert!(!gate.ban(PeerId::random(), Some(local), period));
        }
        assert!(gate.admit_pending_inbound(Some(local)).is_ok());
    }

    #[test]
    fn bans_stay_bounded_and_expire() {
        let mut bans = Bans::<u32>::default();
        let now = Instant::now();
        for k in 0..(MAX_BANS as u32 + 50) {
            bans.ban(k, now + Duration::from_secs(60), now);
        }
        assert!(bans.until.len() <= MAX_BANS);
        assert!(bans.is_banned(&(MAX_BANS as u32 + 49), now));
        assert!(!bans.is_banned(&(MAX_BANS as u32 + 49), now + Duration::from_secs(61)));
    }
}
